"""Voice-adaptation benchmark: GE2E similarity raw vs adapted, registration time, embedding-cache hit/miss.

    RAY_AUTH_MODE=disabled .venv/bin/python bench/cloning.py
    RAY_AUTH_MODE=disabled .venv/bin/python bench/cloning.py --matching [--clips lj ...] [--steps N --seconds S]

``--matching``: voice matching on Kokoro, on real human speech (bench/matching.py; writes the
``<!-- bench:matching -->`` section).

References are made here (no downloads): the default Piper voice transformed with WORLD into
synthetic speakers of different pitch, vocal-tract length and spectral tilt (tests/audio_fixtures.py).
Writes the ``<!-- bench:cloning -->`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serving import update_section  # noqa: E402
from tests.audio_fixtures import SR, SPEAKERS, speaker_clip  # noqa: E402
from tts_engine.audio.adapt import adapt_to_profile, analyze_voice  # noqa: E402
from tts_engine.engine import TTSEngine  # noqa: E402
from tts_engine.audio.encoders import encode  # noqa: E402
from tts_engine.speaker.ge2e import SpeakerEncoder, similarity  # noqa: E402

TEXTS = ["Please leave a message after the tone and I will call you back soon.",
         "The weather today is bright and clear, with a gentle breeze from the west."]


def similarity_table(encoder: SpeakerEncoder, engine: TTSEngine) -> list[tuple[str, float, float, float]]:
    """Per synthetic speaker: similarity of the raw default voice, of the default voice merely passed
    through WORLD (adapted to its own profile: what resynthesis alone changes), and adapted."""
    rows = []
    for name in [n for n in SPEAKERS if n != "joe"]:
        reference = np.concatenate([speaker_clip(name, 0), speaker_clip(name, 1)])
        ref_embedding = encoder.embed(reference, SR)
        profile = analyze_voice(reference, SR)
        raw, resynth, adapted = [], [], []
        for text in TEXTS:
            audio = engine.synthesize(text, seed=0).audio
            raw.append(similarity(encoder.embed(audio, SR), ref_embedding))
            itself = adapt_to_profile(audio, SR, analyze_voice(audio, SR))
            resynth.append(similarity(encoder.embed(itself, SR), ref_embedding))
            adapted.append(similarity(encoder.embed(adapt_to_profile(audio, SR, profile), SR), ref_embedding))
        rows.append((name, float(np.mean(raw)), float(np.mean(resynth)), float(np.mean(adapted))))
    return rows


def service_numbers(reference_wav: bytes) -> dict[str, float]:
    """Registration time and SpeakerEmbeddingCache miss/hit latency on a live local app."""
    import httpx
    import ray
    from ray import serve

    from serve_app.app import build_app

    store = tempfile.mkdtemp(prefix="voxbench-")
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": 8041})
        serve.run(build_app({"store": f"file://{store}", "auth": "none"}), name="bench", route_prefix="/")
        base = "http://127.0.0.1:8041"
        with httpx.Client(base_url=base, timeout=300) as c:
            t0 = time.perf_counter()
            voice_id = c.post("/v1/voices", data={"name": "bench"},
                              files={"audio": ("r.wav", reference_wav)}).json()["voice_id"]
            accepted = time.perf_counter() - t0
            while (status := c.get(f"/v1/voices/{voice_id}").json())["status"] == "processing":
                time.sleep(0.2)
            registered = time.perf_counter() - t0
        cache = serve.get_deployment_handle("SpeakerEmbeddingCache", app_name="bench")
        other = encode(np.concatenate([speaker_clip("deep", 0), speaker_clip("deep", 1)]), SR, "wav")

        async def timed(data: bytes) -> float:
            t = time.perf_counter()
            await cache.analyze.remote(data)
            return (time.perf_counter() - t) * 1000

        async def miss_then_hits() -> tuple[float, list[float]]:
            miss = await timed(other)
            return miss, [await timed(other) for _ in range(10)]

        miss, hits = asyncio.run(miss_then_hits())
        return {"accepted_s": accepted, "registered_s": registered, "status": status["status"],
                "similarity": status.get("similarity"), "miss_ms": miss, "hit_ms": statistics.median(hits)}
    finally:
        serve.shutdown()
        ray.shutdown()


def main() -> None:
    started = time.time()
    encoder, engine = SpeakerEncoder(), TTSEngine()
    rows = similarity_table(encoder, engine)
    for name, raw, resynth, adapted in rows:
        print(f"{name:8s} raw {raw:.3f}  WORLD only {resynth:.3f}  adapted {adapted:.3f}")
    reference = encode(np.concatenate([speaker_clip("child", 0), speaker_clip("child", 1)]), SR, "wav")
    svc = service_numbers(reference)
    print(svc)
    mean_raw, mean_resynth, mean_adapted = (float(np.mean([row[i] for row in rows])) for i in (1, 2, 3))
    table = "\n".join(f"| {n} | {r:.3f} | {w:.3f} | {a:.3f} | {a - r:+.3f} |" for n, r, w, a in rows)
    body = f"""## Voice adaptation (`bench/cloning.py`)

- Command: `RAY_AUTH_MODE=disabled .venv/bin/python bench/cloning.py`
- Machine: {platform.processor() or platform.machine()}, 2 cores, CPU only; date {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; run took {time.time() - started:.0f} s
- References: the default voice turned by WORLD into synthetic speakers (tests/audio_fixtures.py:
  F0 x, intonation spread x, formant warp, spectral tilt, speaking rate); two sentences each (~6 s).
  Outputs: the default voice saying {len(TEXTS)} other sentences, raw and adapted to the reference's profile.

| synthetic speaker | GE2E sim. raw default voice | WORLD resynthesis only | adapted | change raw -> adapted |
|---|---:|---:|---:|---:|
{table}
| **mean** | **{mean_raw:.3f}** | **{mean_resynth:.3f}** | **{mean_adapted:.3f}** | **{mean_adapted - mean_raw:+.3f}** |

Read with care: the references are synthetic, *made with WORLD from the default voice itself*, so
passing the default voice through WORLD already raises similarity (third column); the part due to
adaptation is adapted minus that column. The team's earlier figure on 11 real references (about
0.50 -> 0.68) cannot be checked here (no real recordings on these machines). This is adaptation,
not identity cloning.

| service (local store) | value |
|---|---:|
| `POST /v1/voices` answered (202) | {svc['accepted_s'] * 1000:.0f} ms |
| registration until `{svc['status']}` (analysis + similarity measurement) | {svc['registered_s']:.1f} s |
| similarity reported for that voice | {svc['similarity']} |
| SpeakerEmbeddingCache `analyze`, miss (decode, GE2E, WORLD profile, persist) | {svc['miss_ms']:.0f} ms |
| SpeakerEmbeddingCache `analyze`, hit (median of 10) | {svc['hit_ms']:.1f} ms |
"""
    update_section("cloning", body)
    print(body)


def matching_main() -> None:
    import argparse

    from bench import matching
    from bench.speech_clips import CLIPS
    from tts_engine.settings import Settings

    ap = argparse.ArgumentParser()
    ap.add_argument("--matching", action="store_true")
    ap.add_argument("--clips", nargs="*", default=list(CLIPS))
    ap.add_argument("--steps", type=int, default=Settings().matching_steps)  # a registration's fit
    ap.add_argument("--seconds", type=float, default=480.0)
    ap.add_argument("--no-wer", action="store_true")
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "voxserve" / "speech-clips")
    ap.add_argument("--json", type=Path, default=None, help="per-clip results (with fit histories)")
    args = ap.parse_args()
    started = time.time()
    rows = matching.run(args.clips, args.steps, args.seconds, args.cache_dir, not args.no_wer, args.json)
    body = matching.section(rows, args.steps, args.seconds, started)
    update_section("matching", body)
    print(body)


if __name__ == "__main__":
    if "--matching" in sys.argv:
        matching_main()
    else:
        main()
