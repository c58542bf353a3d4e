"""SpeakerEmbeddingCache deployment: reference analysis by content hash, and voice-registration jobs.

Get-or-compute: in-memory LRU over entries persisted in the store
(``tenants/{tenant}/embeddings/{hash}.json``), so a restarted replica reloads lazily; concurrent
requests for one clip compute once. Entries are per tenant: a clip another tenant analysed is
neither read nor answered faster (that timing would tell what others uploaded).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import numpy as np
from ray import serve
from ray.serve.metrics import Counter

from tts_engine.speaker.references import (
    SIMILARITY_SENTENCE, AdaptationConditioning, Reference, analyze_reference, content_hash,
)
from tts_engine.engine import TTSEngine
from tts_engine.errors import NotFound, VoxServeError
from tts_engine.settings import Settings
from tts_engine.speaker.ge2e import SpeakerEncoder, similarity
from tts_engine.speaker.matching import MatchReport
from storage import open_store
from storage.voices import DEFAULT_TENANT, VoiceRegistry, embedding_key

from .options import SPEAKER_CACHE

log = logging.getLogger("voxserve")


@serve.deployment(name="SpeakerEmbeddingCache", **SPEAKER_CACHE)
class SpeakerEmbeddingCache:
    def __init__(self, settings: dict | None = None, matcher=None) -> None:
        self.settings = Settings(**(settings or {}))
        # Voice matching (issue 13): fits run in the VoiceMatcher deployment (None: DSP only).
        self.matcher = matcher if self.settings.matching_enabled else None
        self.matches: OrderedDict[tuple, MatchReport] = OrderedDict()
        self.store = open_store(self.settings)
        self.registry = VoiceRegistry(self.store)
        self.encoder = SpeakerEncoder()
        self.entries: OrderedDict[tuple[str, str], Reference] = OrderedDict()   # (tenant, hash)
        self.inflight: dict[tuple, asyncio.Future] = {}   # analyses and fits being computed
        self.counts = {"hit": 0, "miss": 0}
        self.lookups = Counter("voxserve_speaker_cache", description="Speaker-embedding cache lookups",
                               tag_keys=("result",))
        self._engine: TTSEngine | None = None

    async def analyze(self, data: bytes, tenant: str = DEFAULT_TENANT) -> Reference:
        """Embedding + voice profile of a clip, computed at most once per tenant and content hash."""
        key = (tenant, content_hash(data))
        return await self._once(self.entries, key, lambda: asyncio.to_thread(self._load_or_compute, key, data))

    def _load_or_compute(self, key: tuple[str, str], data: bytes) -> tuple[Reference, bool]:
        tenant, digest = key
        path = embedding_key(digest, tenant)
        try:
            return Reference.from_json(self.store.get(path)), True
        except NotFound:
            pass
        reference = analyze_reference(data, self.settings, self.encoder)
        self.store.put(path, reference.to_json(), "application/json")
        return reference, False

    async def match(self, data: bytes, tenant: str = DEFAULT_TENANT,
                    methods: tuple[str, ...] = ("kokoro-style", "kokoro-style+dsp")) -> MatchReport:
        """A short voice-matching fit of an on-the-fly reference, at most once per tenant, clip
        (content hash) and method set: kept in memory (LRU) and in the store."""
        if self.matcher is None:
            raise VoxServeError("voice matching is not served here", field="reference_audio")
        key = (tenant, content_hash(data), methods)
        tag = "-".join(m.replace("+", "_") for m in methods)  # store keys allow [A-Za-z0-9._/-]
        path = f"tenants/{tenant}/matches/{key[1]}.{tag}.json"

        async def load_or_fit() -> tuple[MatchReport, bool]:
            report, from_store = await asyncio.to_thread(self._stored_match, path)
            if report is None:
                report = MatchReport.from_json(await self.matcher.quick.remote(data, methods))
                await asyncio.to_thread(self.store.put, path, report.to_json(), "application/json")
            return report, from_store

        return await self._once(self.matches, key, load_or_fit)

    async def _once(self, lru: OrderedDict, key: tuple, load: Callable[[], Awaitable[tuple[object, bool]]]):
        """``lru[key]``, else the one in-flight load of it (concurrent callers share it), else
        ``load()`` -> (value, from_store); counted as a hit unless it had to be computed."""
        if key in lru:
            lru.move_to_end(key)
            return self._count("hit", lru[key])
        if key in self.inflight:
            return self._count("hit", await asyncio.shield(self.inflight[key]))
        future = asyncio.get_running_loop().create_future()
        self.inflight[key] = future
        try:
            value, from_store = await load()
            lru[key] = value
            while len(lru) > self.settings.speaker_cache_size:
                lru.popitem(last=False)
            future.set_result(value)
            return self._count("hit" if from_store else "miss", value)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            self.inflight.pop(key, None)

    def _count(self, result: str, value):
        self.counts[result] += 1
        self.lookups.inc(tags={"result": result})
        return value

    def _stored_match(self, path: str) -> tuple[MatchReport | None, bool]:
        try:
            return MatchReport.from_json(self.store.get(path)), True
        except NotFound:
            return None, False

    async def register(self, voice_id: str, tenant: str = DEFAULT_TENANT) -> str:
        """The registration job: voice matching in the VoiceMatcher deployment where it is served;
        else analyse the stored reference, measure similarity, mark ready/failed."""
        registry = self.registry.for_tenant(tenant)
        if self.matcher is not None:
            try:
                return await self.matcher.register.remote(voice_id, tenant)
            except Exception:  # noqa: BLE001 - the matcher replica died: say so on the voice
                log.exception("voice matching job for %s was interrupted", voice_id)
                return await asyncio.to_thread(_interrupted, registry, voice_id)
        record = await asyncio.to_thread(registry.get, voice_id)
        try:
            data = await asyncio.to_thread(registry.reference, record)
            reference = await self.analyze(data, tenant)
            raw, adapted = await asyncio.to_thread(self._measure, reference, record.base_voice)
            record.profile, record.status = reference.profile, "ready"
            record.similarity, record.similarity_unadapted = round(adapted, 4), round(raw, 4)
        except NotFound:
            return "deleted"  # removed while processing
        except VoxServeError as exc:
            record.status, record.reason = "failed", exc.message
        except Exception:  # noqa: BLE001 - a job failure is reported on the voice, not raised
            log.exception("voice registration %s failed", voice_id)
            record.status, record.reason = "failed", "analysis failed"  # the cause is logged, not shown
        try:
            await asyncio.to_thread(registry.get, voice_id)  # still there?
            await asyncio.to_thread(registry.save, record)
        except NotFound:
            return "deleted"
        return record.status

    def _measure(self, reference: Reference, base_voice: str) -> tuple[float, float]:
        """GE2E similarity to the reference of the raw base voice and of the adapted one."""
        if self._engine is None:
            self._engine = TTSEngine(self.settings)
        result = self._engine.synthesize(SIMILARITY_SENTENCE, voice=base_voice or None, seed=0)
        adapted = AdaptationConditioning(reference.profile).apply(result.audio, result.sample_rate)
        target = np.asarray(reference.embedding, dtype=np.float32)
        raw_sim = similarity(self.encoder.embed(result.audio, result.sample_rate), target)
        adapted_sim = similarity(self.encoder.embed(adapted, result.sample_rate), target)
        return raw_sim, adapted_sim

    def stats(self) -> dict:
        return {**self.counts, "entries": len(self.entries)}


def _interrupted(registry: VoiceRegistry, voice_id: str) -> str:
    try:
        record = registry.get(voice_id)
    except NotFound:
        return "deleted"
    if record.status == "processing":
        record.status, record.reason = "failed", "the voice-matching job was interrupted; register the voice again"
        registry.save(record)
    return record.status
