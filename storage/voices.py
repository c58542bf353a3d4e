"""Registered voices in the store (``tenants/{tenant}/voices/{id}/...``): records, references, lifecycle.

Voices belong to a tenant: a registry is bound to one (``for_tenant``) and never sees another's.
Voices registered before tenancy (``voices/{id}/...``) belong to the ``default`` tenant: its
registry finds them there and moves their record under its own prefix on first read (their
reference keeps its recorded key), so nothing has to be migrated by hand.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, field

import numpy as np

from storage.base import AudioStore
from tts_engine.errors import LimitReached, NotFound, VoiceNotReady
from tts_engine.speaker.references import METHOD, content_hash

VOICE_PREFIX = "vx_"
LEGACY_PREFIX = "voices/"   # before tenancy: the default tenant's
DEFAULT_TENANT = "default"
# What create() makes; anything else (non-ASCII, punctuation) cannot name a voice: 404, not a key error.
_VOICE_ID = re.compile(r"vx_[0-9a-f]{16}")


@dataclass
class VoiceRecord:
    voice_id: str
    name: str
    language: str
    status: str                   # processing | ready | failed
    reference_key: str
    reference_hash: str
    created_at: float
    transcript: str | None = None
    reason: str | None = None
    similarity: float | None = None          # GE2E(adapted output, reference)
    similarity_unadapted: float | None = None  # GE2E(raw default voice, reference)
    profile: dict | None = None
    base_voice: str = ""
    method: str = METHOD
    extra: dict = field(default_factory=dict)
    tenant: str = DEFAULT_TENANT
    # Voice matching (issue 13): the job's progress, and its report once done (scores, method).
    progress: float = 0.0
    step: int = 0
    heldout_similarity: float | None = None   # current (while fitting) / final GE2E against the held-out half
    matching: dict | None = None              # MatchReport.public()
    style_key: str | None = None              # the fitted style pack (.npy) in the store

    def public(self) -> dict:
        hidden = ("profile", "reference_key", "extra", "tenant", "style_key")
        data = {k: v for k, v in asdict(self).items() if k not in hidden}
        data.update(id=self.voice_id, kind="registered", languages=self.languages())
        return data

    def languages(self) -> list[str]:
        """A fitted Kokoro style speaks every Kokoro language, whatever the reference spoke."""
        if self.style_key and self.base_voice.startswith("kokoro/"):
            return ["en", "zh", "ja"]
        return [self.language]


class VoiceRegistry:
    """One tenant's registered voices, persisted in the store: they survive restarts."""

    def __init__(self, store: AudioStore, tenant: str = DEFAULT_TENANT) -> None:
        self.store = store
        self.tenant = tenant
        self.prefix = f"tenants/{tenant}/voices/"

    def for_tenant(self, tenant: str) -> "VoiceRegistry":
        return self if tenant == self.tenant else VoiceRegistry(self.store, tenant)

    @staticmethod
    def is_registered_id(voice_id: str | None) -> bool:
        return bool(voice_id) and voice_id.startswith(VOICE_PREFIX)

    def create(self, name: str, language: str, transcript: str | None, data: bytes, base_voice: str,
               max_voices: int | None = None) -> VoiceRecord:
        """Store the reference and a ``processing`` record; LimitReached if this tenant has ``max_voices``."""
        if max_voices is not None:
            count = len(self.list())
            if count >= max_voices:
                raise LimitReached(f"{count} voices registered; the limit is {max_voices} per tenant: "
                                   "delete one first")
        voice_id = VOICE_PREFIX + uuid.uuid4().hex[:16]
        reference_key = f"{self.prefix}{voice_id}/reference.bin"
        self.store.put(reference_key, data, "application/octet-stream", {"voice-id": voice_id})
        record = VoiceRecord(voice_id, name, language, "processing", reference_key, content_hash(data),
                             time.time(), transcript=transcript, base_voice=base_voice, tenant=self.tenant)
        self.save(record)
        return record

    def save(self, record: VoiceRecord) -> None:
        self.store.put(self._record_key(record.voice_id), json.dumps(asdict(record)).encode(),
                       "application/json")

    def get(self, voice_id: str) -> VoiceRecord:
        if not _VOICE_ID.fullmatch(voice_id or ""):
            raise NotFound(f"unknown voice '{voice_id}'", field="voice_id")
        try:
            return VoiceRecord(**json.loads(self.store.get(self._record_key(voice_id))))
        except NotFound:
            legacy = self._adopt_legacy(f"{LEGACY_PREFIX}{voice_id}/voice.json")
            if legacy is None:
                raise NotFound(f"unknown voice '{voice_id}'", field="voice_id") from None
            return legacy

    def _adopt_legacy(self, key: str) -> VoiceRecord | None:
        """A pre-tenancy record, moved under the default tenant's prefix (None for other tenants)."""
        if self.tenant != DEFAULT_TENANT:
            return None
        try:
            record = VoiceRecord(**json.loads(self.store.get(key)))
        except NotFound:
            return None
        record.tenant = DEFAULT_TENANT
        self.save(record)
        self.store.delete(key)
        return record

    def ready(self, voice_id: str) -> VoiceRecord:
        record = self.get(voice_id)
        if record.status != "ready":
            detail = f": {record.reason}" if record.reason else ""
            raise VoiceNotReady(f"voice '{voice_id}' is {record.status}{detail}", field="voice")
        return record

    def reference(self, record: VoiceRecord) -> bytes:
        return self.store.get(record.reference_key)

    def list(self) -> list[VoiceRecord]:
        if self.tenant == DEFAULT_TENANT:
            for key in [k for k in self.store.list_keys(LEGACY_PREFIX) if k.endswith("/voice.json")]:
                self._adopt_legacy(key)
        keys = [k for k in self.store.list_keys(self.prefix) if k.endswith("/voice.json")]
        records = []
        for key in keys:
            try:
                records.append(VoiceRecord(**json.loads(self.store.get(key))))
            except NotFound:
                continue  # deleted while listing
        return sorted(records, key=lambda r: r.created_at)

    def delete(self, voice_id: str) -> None:
        """Remove a voice: its record, reference clip, fitted style and, unless another voice has the
        same clip, its analysis; a running matching job sees its record gone and stops (cancellation)."""
        record = self.get(voice_id)
        self.store.delete(self._record_key(voice_id))
        self.store.delete(record.reference_key)
        self.store.delete(self.style_pack_key(voice_id))
        if not any(r.reference_hash == record.reference_hash for r in self.list()):
            self.store.delete(embedding_key(record.reference_hash, self.tenant))

    def style_pack_key(self, voice_id: str) -> str:
        return f"{self.prefix}{voice_id}/style_pack.npy"

    def save_style_pack(self, record: VoiceRecord, pack: np.ndarray) -> str:
        """Persist a fitted style pack ([510, 256] float32, .npy) under the voice; returns its key."""
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(pack, dtype=np.float32), allow_pickle=False)
        key = self.style_pack_key(record.voice_id)
        self.store.put(key, buffer.getvalue(), "application/octet-stream", {"voice-id": record.voice_id})
        return key

    def style_pack(self, record: VoiceRecord) -> np.ndarray:
        if not record.style_key:
            raise NotFound(f"voice '{record.voice_id}' has no fitted style", field="voice")
        return np.load(io.BytesIO(self.store.get(record.style_key)), allow_pickle=False)

    def _record_key(self, voice_id: str) -> str:
        return f"{self.prefix}{voice_id}/voice.json"


def embedding_key(reference_hash: str, tenant: str = DEFAULT_TENANT) -> str:
    """Where the SpeakerEmbeddingCache persists a clip's analysis (embedding + voice profile)."""
    return f"tenants/{tenant}/embeddings/{reference_hash}.json"
