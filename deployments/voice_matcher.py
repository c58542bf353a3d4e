"""VoiceMatcher deployment: voice-matching fits, apart from online synthesis.

Its own replica and resources (``matching_num_cpus``, ``matching_num_gpus``: the GPU when there
is one), one fit at a time per replica with ``matching_threads`` torch threads, so a fit never
takes the Synthesizer's CPU. Two entry points:

* ``register(voice_id, tenant)``: the registration job. Progress, step and the current
  held-out similarity are written to the voice's record as it runs; deleting the voice
  cancels it (the job looks for its record at every step).
* ``quick(data, methods)``: a short fit for an on-the-fly reference (the SpeakerEmbeddingCache
  keeps its result by the clip's content hash).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from ray import serve

from storage import open_store
from storage.voices import DEFAULT_TENANT, VoiceRecord, VoiceRegistry
from tts_engine.errors import NotFound, VoxServeError
from tts_engine.settings import Settings
from tts_engine.speaker.matching import MatchCancelled, MatchReport, VoiceMatcher
from tts_engine.speaker.references import decode_reference

from .options import VOICE_MATCHER

log = logging.getLogger("voxserve")
SAVE_EVERY_S = 1.0


@serve.deployment(name="VoiceMatcher", **VOICE_MATCHER)
class VoiceMatcherDeployment:
    def __init__(self, settings: dict | None = None) -> None:
        self.settings = Settings(**(settings or {}))
        self.registry = VoiceRegistry(open_store(self.settings))
        self._matcher: VoiceMatcher | None = None
        self._load = threading.Lock()
        self.counts = {"registered": 0, "cancelled": 0, "failed": 0, "quick": 0}

    def matcher(self) -> VoiceMatcher:
        with self._load:
            if self._matcher is None:
                self._matcher = VoiceMatcher(self.settings)
            return self._matcher

    async def register(self, voice_id: str, tenant: str = DEFAULT_TENANT) -> str:
        return await asyncio.to_thread(self._register, voice_id, tenant)

    async def quick(self, data: bytes, methods: tuple[str, ...]) -> bytes:
        """A short fit of an on-the-fly reference: the MatchReport as JSON."""
        report = await asyncio.to_thread(self._quick, data, methods)
        self.counts["quick"] += 1
        return report.to_json()

    def stats(self) -> dict:
        return dict(self.counts)

    # ------------------------------------------------------------------ the jobs
    def _quick(self, data: bytes, methods: tuple[str, ...]) -> MatchReport:
        audio, rate = decode_reference(data, self.settings, "reference_audio")
        s = self.settings
        return self.matcher().match(audio, rate, s.matching_quick_steps, s.matching_quick_seconds, methods)

    def _register(self, voice_id: str, tenant: str) -> str:
        registry = self.registry.for_tenant(tenant)
        try:
            record = registry.get(voice_id)
            audio, rate = decode_reference(registry.reference(record), self.settings, "audio")
            report = self.matcher().match(audio, rate, self.settings.matching_steps, self.settings.matching_seconds,
                                          progress=_Progress(registry, record))
            return self._finish(registry, record, report)
        except (NotFound, MatchCancelled):
            self.counts["cancelled"] += 1
            registry.store.delete(registry.style_pack_key(voice_id))
            return "deleted"
        except VoxServeError as exc:
            return self._fail(registry, voice_id, exc.message)
        except Exception:  # noqa: BLE001 - a job failure is reported on the voice, not raised
            log.exception("voice matching %s failed", voice_id)
            return self._fail(registry, voice_id, "voice matching failed")  # the cause is logged, not shown

    def _finish(self, registry: VoiceRegistry, record: VoiceRecord, report: MatchReport) -> str:
        pack = report.pack() if report.method != "dsp" else None
        if pack is not None:
            record.style_key = registry.save_style_pack(record, pack)
        chosen, start = report.chosen(), report.heldout.get("start") or report.heldout.get("piper") or {}
        record.status, record.progress, record.reason = "ready", 1.0, None
        record.base_voice, record.profile, record.method = report.base_voice, report.profile, report.method_text
        record.similarity, record.similarity_unadapted = chosen.get("ge2e"), start.get("ge2e")
        record.heldout_similarity, record.matching = chosen.get("ge2e"), report.public()
        record.step = int(report.fit.get("steps", 0))
        if not _save_if_present(registry, record):
            registry.store.delete(registry.style_pack_key(record.voice_id))
            self.counts["cancelled"] += 1
            return "deleted"
        self.counts["registered"] += 1
        return record.status

    def _fail(self, registry: VoiceRegistry, voice_id: str, reason: str) -> str:
        self.counts["failed"] += 1
        try:
            record = registry.get(voice_id)
        except NotFound:
            return "deleted"
        record.status, record.reason = "failed", reason
        return record.status if _save_if_present(registry, record) else "deleted"


class _Progress:
    """Writes the job's progress to its record (at most once a second); False once it is deleted."""

    def __init__(self, registry: VoiceRegistry, record: VoiceRecord) -> None:
        self.registry, self.record, self.saved = registry, record, 0.0

    def __call__(self, fraction: float, step: int, held: float | None) -> bool:
        record = self.record
        record.progress, record.step = round(min(fraction, 0.99), 3), step
        if held is not None:
            record.heldout_similarity = round(held, 4)
        now = time.monotonic()
        if now - self.saved < SAVE_EVERY_S:
            return self.registry.store.exists(record.reference_key)
        self.saved = now
        return _save_if_present(self.registry, record)


def _save_if_present(registry: VoiceRegistry, record: VoiceRecord) -> bool:
    """Save ``record`` unless its voice was deleted meanwhile (then undo the save: a DELETE removes the
    record, then the reference, so a reference that is gone means the voice is)."""
    if not registry.store.exists(record.reference_key):
        return False
    registry.save(record)
    if not registry.store.exists(record.reference_key):
        registry.store.delete(registry._record_key(record.voice_id))
        return False
    return True
