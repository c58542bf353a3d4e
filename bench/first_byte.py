"""Streaming time to first audio byte: the service vs the bare engine's first chunk.

    RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/first_byte.py [--reps 15] [--max-load 3]

One sentence, ``POST /v1/tts/stream`` (wav, cache off) against ``make serve``: time from sending the
request to the first byte past the 44-byte WAV header. The engine side, in this process on the
same sentence: ``TTSEngine.render_stream`` until its first chunk (phoneme ids ready, i.e. acoustic
model + first vocoder chunk), at the thread count a lone stream gets in a Synthesizer replica (every
core); also prepare (text frontend) + first chunk. Piper and Kokoro voices, interleaved request by
request; medians. Kokoro decodes a piece whole, so a stream's first sentence is cut after a clause
(``SynthesisOptions.streaming``): two more Kokoro rows have sentences with a clause (English and
Mandarin), and for them the engine's first chunk of the uncut sentence is shown beside it. Rewrites the ``<!-- bench:first_byte -->`` section of docs/BENCHMARKS.md.
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
CLAUSE_EN = "When the storm finally passed, the villagers walked down to the river to see what the water had left behind."
CLAUSE_ZH = "欢迎使用语音合成系统，我们支持中文、英文和日文，流式输出可以让你更快地听到第一段声音。"
# (row, family, voice, sentence)
CASES = {"piper": ("piper", VOICES["piper"], SENTENCE),
         "kokoro": ("kokoro", VOICES["kokoro"], SENTENCE),
         "kokoro-clause-en": ("kokoro", VOICES["kokoro"], CLAUSE_EN),
         "kokoro-clause-zh": ("kokoro", "kokoro/jf_gongitsune", CLAUSE_ZH)}
TARGET_RATIO = 1.3


def engine_first_chunk(engine, text: str, voice: str, streaming: bool = True) -> tuple[float, float]:
    """(ms to the first chunk from ready phoneme ids, ms from the raw text); ``streaming``: cut as a
    stream is (a Kokoro sentence after its first clause)."""
    from tts_engine.engine import SynthesisOptions

    t0 = time.perf_counter()
    item = engine.prepare(text, SynthesisOptions(voice=voice, seed=1, streaming=streaming)).items()[0]
    t1 = time.perf_counter()
    next(iter(engine.render_stream(item)))
    t2 = time.perf_counter()
    return (t2 - t1) * 1000, (t2 - t0) * 1000


def measure(server, engine, cases, reps: int, log) -> dict:
    samples = {c: {"service": [], "whole": [], "engine": [], "engine_text": [], "uncut": []} for c in cases}
    for r in range(reps):
        for case in cases:
            _family, voice, text = CASES[case]
            body = {"text": text, "voice": voice, "format": "wav", "cache": False, "seed": 1}
            first, whole = asyncio.run(first_audio_byte(f"{server.base}/v1/tts/stream", body))
            chunk_ms, text_ms = engine_first_chunk(engine, text, voice)
            s = samples[case]
            s["service"].append(first * 1000)
            s["whole"].append(whole * 1000)
            s["engine"].append(chunk_ms)
            s["engine_text"].append(text_ms)
            if "clause" in case:
                s["uncut"].append(engine_first_chunk(engine, text, voice, streaming=False)[0])
        if r % 5 == 4:
            log(f"rep {r + 1}: " + ", ".join(f"{f} {median(samples[f]['service']):.0f} vs "
                                              f"{median(samples[f]['engine']):.0f} ms" for f in cases))
    return samples


def report(samples: dict, meta: dict, args) -> str:
    rows, verdicts = [], []
    for case, s in samples.items():
        service, engine = median(s["service"]), median(s["engine"])
        ratio = service / engine
        uncut = f"{median(s['uncut']):.0f}" if s["uncut"] else "-"
        rows.append(f"| {case} ({CASES[case][1]}) | **{service:.0f}** | {percentile(s['service'], 90):.0f} | "
                    f"{engine:.0f} | {median(s['engine_text']):.0f} | **{ratio:.2f}** | {median(s['whole']):.0f} | "
                    f"{uncut} |")
        target = f"target <= {TARGET_RATIO}" if case == "piper" else "reported, no target"
        verdicts.append(f"{case}: service / engine first chunk {ratio:.2f} ({target})"
                        + ((": met" if ratio <= TARGET_RATIO else ": **NOT met**") if case == "piper" else ""))
        if s["uncut"]:
            verdicts.append(f"{case}: first audio byte {service:.0f} ms with the clause cut; the engine alone needs "
                            f"{uncut} ms for the uncut sentence's first chunk ({median(s['uncut']) / service:.1f}x)")
    return f"""## Streaming first byte (`bench/first_byte.py`)

- Command: `RAY_USAGE_STATS_ENABLED=0 .venv/bin/python bench/first_byte.py --reps {args.reps}`
- Machine: {meta['machine']}; 1-min load average {meta['load_start']:.1f} at start, {meta['load_end']:.1f} at end.
- Date: {meta['date']}; the run took {meta['took']:.0f} s.
- Sentences: "{SENTENCE}" (piper, kokoro); with a clause: "{CLAUSE_EN}" (kokoro-clause-en),
  "{CLAUSE_ZH}" (kokoro-clause-zh). Seed 1, wav, cache off; {args.reps} requests per row, interleaved with
  the engine runs. Service: `make serve` defaults, `POST /v1/tts/stream`, time to the first byte past the
  44-byte WAV header (client on the same box). Engine: this process, `render_stream` to its first chunk
  (0.23 s of audio for Piper; Kokoro's decoder normalizes over the whole piece, so its first chunk is the
  whole first piece: for a stream, the first sentence up to its first clause mark) at
  {meta['threads']} torch threads, the count a lone stream gets in a replica. "Uncut": the engine's first
  chunk of the same sentence rendered whole (what a Kokoro stream waited for before the clause cut).

| row (voice) | service first byte, median ms | p90 ms | engine first chunk ms | engine incl. text frontend ms | service / engine | whole stream ms | engine first chunk, uncut ms |
|---|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

{chr(10).join('- ' + v for v in verdicts)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--max-load", type=float, default=3.0)
    parser.add_argument("--max-wait", type=float, default=900.0)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    cases = tuple(args.cases.split(","))
    families = sorted({CASES[c][0] for c in cases})
    import torch

    from tts_engine.engine import TTSEngine
    from tts_engine.parallel import available_cores
    from tts_engine.settings import Settings

    threads = available_cores()
    torch.set_num_threads(threads)
    started = time.time()
    engine = TTSEngine(Settings(device="cpu", model_families=list(families)))
    with voxserve() as server:
        for case in cases:  # warm both sides (model load, first-call allocations)
            _family, voice, text = CASES[case]
            body = {"text": text, "voice": voice, "format": "wav", "cache": False}
            for _ in range(2):
                asyncio.run(first_audio_byte(f"{server.base}/v1/tts/stream", body))
                engine_first_chunk(engine, text, voice)
        load_start = wait_for_quiet(args.max_load, args.max_wait)
        samples = measure(server, engine, cases, args.reps, lambda m: print(m, flush=True))
        load_end = load1()
    meta = run_meta(started, load_start, load_end, threads=threads)
    text = report(samples, meta, args)
    print(text)
    if not args.no_doc:
        update_section("first_byte", text)


if __name__ == "__main__":
    main()
