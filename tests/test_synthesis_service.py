"""The ingress's synthesis service with fake deployment handles (a unit test of that layer):
cross-replica de-duplication through claim objects in a shared store, and stream uploads."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from serve_app.audio_request import AudioRequest
from serve_app.claims import claim_key
from serve_app.metrics import IngressMetrics
from serve_app.synthesis import SynthesisService
from storage import LocalStore
from tts_engine.engine import SynthesisOptions
from tts_engine.settings import Settings


class Remote:
    """Stands in for ``handle.method`` of a Ray Serve deployment: ``.remote(...)`` gives an awaitable."""

    def __init__(self, fn):
        self.fn = fn

    def remote(self, *args):
        return self.fn(*args)


class FakeFrontend:
    def __init__(self, engine):
        self.prepare = Remote(self._prepare)
        self.engine = engine

    async def _prepare(self, text, options):
        return self.engine.prepare(text, options)


class CountingSynthesizer:
    """Renders one second of a tone per sentence, slowly, and counts the calls."""

    def __init__(self):
        self.calls = 0
        self.render = Remote(self._render)
        self.render_stream = Remote(self._render_stream)

    def options(self, stream: bool = False) -> "CountingSynthesizer":
        return self

    async def _render_stream(self, *item):
        for _ in range(5):
            await asyncio.sleep(0.05)
            yield np.sin(np.linspace(0, 400, 5000)).astype(np.float32) * 0.3

    async def _render(self, item):
        self.calls += 1
        await asyncio.sleep(0.3)
        return np.sin(np.linspace(0, 2000, 22050)).astype(np.float32) * 0.3


@pytest.fixture
def replicas(engine, tmp_path):
    settings = Settings(store=f"file://{tmp_path}")
    store = LocalStore(settings, tmp_path)
    synth = CountingSynthesizer()
    make = lambda: SynthesisService(settings, FakeFrontend(engine), {"piper": synth}, store, IngressMetrics())  # noqa: E731
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("serve_app.metrics.Counter", _NullMetric)
        mp.setattr("serve_app.metrics.Histogram", _NullMetric)
        yield make(), make(), synth, store


class _NullMetric:
    def __init__(self, *a, **k):
        pass

    def inc(self, *a, **k):
        pass

    def observe(self, *a, **k):
        pass


def request(text: str, cache: bool = True) -> AudioRequest:
    return AudioRequest(text=text, options=SynthesisOptions(), format="wav", cache=cache)


def test_identical_requests_on_two_replicas_synthesize_once(replicas):
    a, b, synth, store = replicas

    async def burst():
        return await asyncio.gather(a.synthesize(request("Shared across replicas.")),
                                    b.synthesize(request("Shared across replicas.")),
                                    a.synthesize(request("Shared across replicas.")))

    results = asyncio.run(burst())
    assert synth.calls == 1
    assert len({r.key for r in results}) == 1
    assert sorted(r.cached for r in results) == [False, True, True]
    assert not store.list_keys("locks/")  # the claim is released


def test_stale_claim_is_taken_over(replicas):
    a, _, synth, store = replicas
    result = asyncio.run(a.synthesize(request("First.")))
    claim = claim_key(result.key.replace(".wav", ".flac"))
    store.put(claim, b'{"at": 0}', "application/json")  # a crashed replica's claim from 1970
    req = AudioRequest(text="First.", options=SynthesisOptions(), format="flac")
    assert asyncio.run(a.synthesize(req)).cached is False


def test_cache_false_bypasses_claims(replicas):
    a, b, synth, _ = replicas

    async def both():
        return await asyncio.gather(a.synthesize(request("Fresh please.", cache=False)),
                                    b.synthesize(request("Fresh please.", cache=False)))

    asyncio.run(both())
    assert synth.calls == 2


def test_failed_synthesis_releases_claim_and_others_take_over(replicas, engine):
    a, b, synth, store = replicas

    async def failing(item):
        await asyncio.sleep(0.3)
        raise RuntimeError("replica crashed")

    a.synthesizers = {"piper": type("S", (), {"render": Remote(failing)})()}

    async def race():
        first = asyncio.create_task(a.synthesize(request("Will fail once.")))
        while not store.list_keys("locks/"):  # a holds the claim before b arrives
            await asyncio.sleep(0.01)
        second = asyncio.create_task(b.synthesize(request("Will fail once.")))
        return await asyncio.gather(first, second, return_exceptions=True)

    failed, ok = asyncio.run(race())
    assert isinstance(failed, RuntimeError)
    assert ok.cached is False and store.exists(ok.key)


def test_stream_upload_is_aborted_when_the_client_leaves(replicas, tmp_path):
    a, *_ , store = replicas

    async def leave_early():
        stream = await a.stream(AudioRequest(text="One. Two. Three.", options=SynthesisOptions(), format="mp3"))
        body = stream.body
        await body.__anext__()
        await body.aclose()
        return stream.key

    key = asyncio.run(leave_early())
    assert not store.exists(key)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and ".tmp-" in p.name]
    assert leftovers == []



class BusySynthesizer(CountingSynthesizer):
    """Counts how many renders of one request are in flight at once, and which are cancelled."""

    def __init__(self):
        super().__init__()
        self.in_flight = self.most_in_flight = 0
        self.rendered: list[int] = []

    def _render(self, item):
        self.calls += 1
        return asyncio.ensure_future(self._busy(item))

    async def _busy(self, item):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            self.rendered.append(len(item.ids))
            return np.full(2205, 0.1 + 0.001 * len(item.ids), dtype=np.float32)
        finally:
            self.in_flight -= 1


def _service_with(engine, tmp_path, synth, limit: int) -> SynthesisService:
    settings = Settings(store=f"file://{tmp_path}", request_inflight_sentences=limit)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("serve_app.metrics.Counter", _NullMetric)
        mp.setattr("serve_app.metrics.Histogram", _NullMetric)
        return SynthesisService(settings, FakeFrontend(engine), {"piper": synth}, LocalStore(settings, tmp_path),
                                IngressMetrics())


LONG_TEXT = " ".join(f"Sentence number {i} is here." for i in range(40))


def test_a_long_text_keeps_a_bounded_number_of_sentences_in_flight(engine, tmp_path):
    """A text of many sentences must not fill the Synthesizer queue concurrent requests share
    (a 1200-sentence text was refused 503): at most request_inflight_sentences at once, all rendered."""
    synth = BusySynthesizer()
    service = _service_with(engine, tmp_path, synth, limit=4)
    result = asyncio.run(service.synthesize(request(LONG_TEXT, cache=False), want_bytes=True))
    assert synth.calls == 40 and 1 < synth.most_in_flight <= 4
    assert result.duration_s > 40 * 0.1


def test_a_long_stream_keeps_a_bounded_number_of_sentences_in_flight_in_order(engine, tmp_path):
    synth = BusySynthesizer()
    service = _service_with(engine, tmp_path, synth, limit=4)

    async def listen() -> list[float]:
        prepared, chunks = await service.audio_stream(request(LONG_TEXT, cache=False))
        levels = []
        async for audio in chunks:
            if not isinstance(audio, list) and len(audio) == 2205:   # a whole sentence (not a gap)
                levels.append(float(audio[0]))
        return levels, [len(item.ids) for item in prepared.items()]

    levels, id_counts = asyncio.run(listen())
    assert synth.calls == 39 and 1 < synth.most_in_flight <= 4   # the first sentence streamed apart
    assert levels == pytest.approx([0.1 + 0.001 * n for n in id_counts[1:]])   # in the text's order


def test_a_stream_left_early_cancels_the_renders_ahead(engine, tmp_path):
    synth = BusySynthesizer()
    service = _service_with(engine, tmp_path, synth, limit=4)

    async def leave() -> None:
        _prepared, chunks = await service.audio_stream(request(LONG_TEXT, cache=False))
        async for audio in chunks:
            if not isinstance(audio, list) and len(audio) == 2205:
                break
        await chunks.aclose()
        await asyncio.sleep(0.05)

    asyncio.run(leave())
    assert synth.calls <= 5 and len(synth.rendered) < 40
