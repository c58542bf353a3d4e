"""Uploaded voice samples (``tenants/{tenant}/samples/{id}``), waiting to become registered voices.

The cloud API of our seed article registers a voice in two steps: upload a sample
(``sample_id``), then start training from it. A sample is only the clip; training
copies it into the voice's own record (``storage/voices.py``), so a sample may expire
(an S3 lifecycle rule on ``samples/``) without breaking any voice.
"""

from __future__ import annotations

import re
import uuid

from storage.base import AudioStore
from tts_engine.errors import NotFound

SAMPLE_PREFIX = "smp_"
_SAMPLE_ID = re.compile(r"smp_[0-9a-f]{16}")


class SampleStore:
    """One tenant's samples: another tenant's sample id is unknown here."""

    def __init__(self, store: AudioStore, tenant: str = "default") -> None:
        self.store = store
        self.tenant = tenant

    def put(self, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Store a clip; its new sample id."""
        sample_id = SAMPLE_PREFIX + uuid.uuid4().hex[:16]
        self.store.put(self._key(sample_id), data, content_type, {"sample-id": sample_id})
        return sample_id

    def get(self, sample_id: str) -> bytes:
        if not isinstance(sample_id, str) or not _SAMPLE_ID.fullmatch(sample_id):
            raise NotFound(f"unknown sample '{sample_id}'", field="sample_id")
        try:
            return self.store.get(self._key(sample_id))
        except NotFound:
            raise NotFound(f"unknown sample '{sample_id}'", field="sample_id") from None

    def _key(self, sample_id: str) -> str:
        return f"tenants/{self.tenant}/samples/{sample_id}"
