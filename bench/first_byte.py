"""Streaming time to first audio byte: the service vs the bare engine's first chunk.

    RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/first_byte.py [--reps 15] [--max-load 3]

One sentence, ``POST /v1/tts/stream`` (wav, cache off) against ``make serve``: time from sending the
request to the first byte past the 44-byte WAV header. The engine side, in this process on the
same sentence: ``TTSEngine.render_stream`` until its first chunk (phoneme ids ready, i.e. acoustic
model + first vocoder chunk), at the thread count a lone stream gets in a Synthesizer replica (every
core); also prepare (text frontend) + first chunk. Piper and Kokoro voices, interleaved request by
request; medians. Rewrites the ``<!-- bench:first_byte -->`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import first_audio_byte, load1, median, run_meta, voxserve, wait_for_quiet  # noqa: E402
from bench.serving import SENTENCE, percentile, update_section  # noqa: E402

VOICES = {"piper": "en_US-joe-medium", "kokoro": "kokoro/jf_alpha"}
TARGET_RATIO = 1.3


def engine_first_chunk(engine, text: str, voice: str) -> tuple[float, float]:
    """(ms to the first chunk from ready phoneme ids, ms from the raw text)."""
    from tts_engine.engine import SynthesisOptions

    t0 = time.perf_counter()
    item = engine.prepare(text, SynthesisOptions(voice=voice, seed=1)).items()[0]
    t1 = time.perf_counter()
    next(iter(engine.render_stream(item)))
    t2 = time.perf_counter()
    return (t2 - t1) * 1000, (t2 - t0) * 1000


def measure(server, engine, families, reps: int, log) -> dict:
    samples = {f: {"service": [], "whole": [], "engine": [], "engine_text": []} for f in families}
    for r in range(reps):
        for family in families:
            body = {"text": SENTENCE, "voice": VOICES[family], "format": "wav", "cache": False, "seed": 1}
            first, whole = asyncio.run(first_audio_byte(f"{server.base}/v1/tts/stream", body))
            chunk_ms, text_ms = engine_first_chunk(engine, SENTENCE, VOICES[family])
            s = samples[family]
            s["service"].append(first * 1000)
            s["whole"].append(whole * 1000)
            s["engine"].append(chunk_ms)
            s["engine_text"].append(text_ms)
        if r % 5 == 4:
            log(f"rep {r + 1}: " + ", ".join(f"{f} {median(samples[f]['service']):.0f} vs "
                                              f"{median(samples[f]['engine']):.0f} ms" for f in families))
    return samples


def report(samples: dict, meta: dict, args) -> str:
    rows, verdicts = [], []
    for family, s in samples.items():
        service, engine = median(s["service"]), median(s["engine"])
        ratio = service / engine
        rows.append(f"| {family} ({VOICES[family]}) | **{service:.0f}** | {percentile(s['service'], 90):.0f} | "
                    f"{engine:.0f} | {median(s['engine_text']):.0f} | **{ratio:.2f}** | {median(s['whole']):.0f} |")
        target = f"target <= {TARGET_RATIO}" if family == "piper" else "reported, no target"
        verdicts.append(f"{family}: service / engine first chunk {ratio:.2f} ({target})"
                        + ((": met" if ratio <= TARGET_RATIO else ": **NOT met**") if family == "piper" else ""))
    return f"""## Streaming first byte (`bench/first_byte.py`)

- Command: `RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/first_byte.py --reps {args.reps}`
- Machine: {meta['machine']}; 1-min load average {meta['load_start']:.1f} at start, {meta['load_end']:.1f} at end.
- Date: {meta['date']}; the run took {meta['took']:.0f} s.
- Sentence: "{SENTENCE}", seed 1, wav, cache off; {args.reps} requests per voice, interleaved with
  the engine runs. Service: `make serve` defaults, `POST /v1/tts/stream`, time to the first byte past the
  44-byte WAV header (client on the same box). Engine: this process, `render_stream` to its first chunk
  (0.23 s of audio for Piper; Kokoro's ONNX Runtime backend renders the whole sentence as one chunk) at
  {meta['threads']} torch threads, the count a lone stream gets in a replica.

| voice | service first byte, median ms | p90 ms | engine first chunk ms | engine incl. text frontend ms | service / engine | whole stream ms |
|---|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

{chr(10).join('- ' + v for v in verdicts)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--families", default="piper,kokoro")
    parser.add_argument("--max-load", type=float, default=3.0)
    parser.add_argument("--max-wait", type=float, default=900.0)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    families = tuple(args.families.split(","))
    import torch

    from tts_engine.engine import TTSEngine
    from tts_engine.parallel import available_cores
    from tts_engine.settings import Settings

    threads = available_cores()
    torch.set_num_threads(threads)
    started = time.time()
    engine = TTSEngine(Settings(device="cpu", model_families=list(families)))
    with voxserve() as server:
        for family in families:  # warm both sides (model load, first-call allocations)
            body = {"text": SENTENCE, "voice": VOICES[family], "format": "wav", "cache": False}
            for _ in range(2):
                asyncio.run(first_audio_byte(f"{server.base}/v1/tts/stream", body))
                engine_first_chunk(engine, SENTENCE, VOICES[family])
        load_start = wait_for_quiet(args.max_load, args.max_wait)
        samples = measure(server, engine, families, args.reps, lambda m: print(m, flush=True))
        load_end = load1()
    meta = run_meta(started, load_start, load_end, threads=threads)
    text = report(samples, meta, args)
    print(text)
    if not args.no_doc:
        update_section("first_byte", text)


if __name__ == "__main__":
    main()
