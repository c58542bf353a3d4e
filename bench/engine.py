"""Engine benchmark: our torch VITS against ONNX Runtime running the same Piper ``.onnx``.

    .venv/bin/python bench/engine.py              # full run, rewrites its section of docs/BENCHMARKS.md
    .venv/bin/python bench/engine.py --quick      # fewer rounds, print only

What it measures, on one fixed set of varied English sentences:

1. Batch 1: compute time / audio time (real-time factor, RTF) of our engine (acoustic +
   vocoder, the calls ``TTSEngine.render_batch`` makes) and of ONNX Runtime (one
   ``session.run``), both with the same thread count (torch.set_num_threads; ORT
   intra_op_num_threads, inter_op 1). Noise scales are 0 and length_scale is the voice's
   default, so both produce the same audio (length and samples; the max abs difference is
   reported) and the timings compare like with like. Ours and ORT alternate sentence by
   sentence, for several rounds; each sentence's time is its median over the rounds.
2. The acoustic / vocoder split of our time.
3. Batching: throughput (audio seconds per second) of ``render_batch`` at batch 1/4/8 over the
   same sentences (in list order, as a server batches whatever arrives, and sorted by length,
   which pads least). ORT gets the same padded batches: the Piper export runs them, but it
   returns no per-item lengths (the caller must know them) and a padded item's audio differs
   slightly from its solo run (its vocoder is not masked), so its batch rows are for reference.
4. Streaming: time from request to the first chunk of ``render_stream`` (acoustic + first
   vocoder chunk) against the one-shot time.
5. CUDA fp32/fp16 rows for our engine when a CUDA device is present.

Shared machines: before each timed call the script pauses 0.1 s (ORT's pool spins ~40 ms after
a run and would otherwise steal a core from the next measurement) and, while other processes
keep the CPUs busy, waits for them to go quiet (up to 5 s; the report counts the calls that
waited and those that ran contended anyway). That matters most for torch: its OpenMP threads
meet at a barrier after every parallel op, so when another process holds one of two cores,
every op waits for a scheduler time slice (a sentence took seconds instead of ~50 ms), while
ORT's work-stealing pool degrades gracefully. Contended measurements measure the neighbours.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- bench:engine -->", "<!-- /bench:engine -->"

SENTENCES = [
    "Hi there!",
    "Why not?",
    "She sells sea shells by the sea shore.",
    "Please call me tomorrow at 3:30 pm.",
    "The quick brown fox jumps over the lazy dog.",
    "Is this the real life, or is this just fantasy?",
    "On March 5th, 2024, we shipped 1,234 units at $19.99 each.",
    "Synthesis at scale needs batching, streaming and caching, and each has its own trade-offs.",
    "Colorless green ideas sleep furiously, said the linguist, smiling at the puzzled students.",
    "It was the best of times, it was the worst of times, it was the age of wisdom, "
    "it was the age of foolishness.",
]
SETTLE_S = 0.1      # pause before each timed call: ORT's workers spin ~40 ms after a run
QUIET_CORES = 0.3   # ... extended while other processes keep more than this many cores busy,
QUIET_WAIT_S = 5.0  # ... for at most this long (then the call runs anyway and is counted)


@dataclass
class Quiet:
    calls: int = 0
    waited: int = 0      # calls that had to wait for other processes to go quiet
    contended: int = 0   # calls that ran with other processes busy anyway


QUIET = Quiet()


@dataclass
class Item:
    text: str
    ids: list[int]
    samples: int = 0                      # audio length (identical for ours and ORT at noise 0)
    ours: list[float] = field(default_factory=list)
    ours_acoustic: list[float] = field(default_factory=list)
    ours_vocoder: list[float] = field(default_factory=list)
    ort: list[float] = field(default_factory=list)
    first_chunk: list[float] = field(default_factory=list)
    first_chunk_samples: int = 0
    max_diff: float = 0.0


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    from tts_engine.engine import TTSEngine
    from tts_engine.settings import Settings

    started = time.time()
    load0 = _cpu_snapshot()
    engine = TTSEngine(Settings(device="cpu", torch_threads=args.threads, cpu_bf16_vocoder=args.cpu_bf16))
    voice = engine.voices.get(args.voice)
    model = engine.model(voice.id)
    session = _ort_session(voice.model_path, args.threads)
    rate = voice.sample_rate
    items = _items(engine, voice.id)

    _warm_up(engine, model, session, items, voice)
    _batch_one(engine, model, session, items, voice, args.rounds)
    batching = _batching(engine, session, items, voice, args.rounds)
    cuda = _cuda_rows(items, voice, args.rounds)
    elapsed = time.time() - started
    others = _others_load(load0, elapsed)

    report = _report(args, items, batching, cuda, rate, elapsed, others)
    print(report)
    if args.write:
        _write_section(report)
        print(f"\nupdated {DOC.relative_to(ROOT)}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="timed repetitions per measurement (median)")
    p.add_argument("--threads", type=int, default=2, help="torch threads = ORT intra-op threads")
    p.add_argument("--voice", default=None, help="voice id (default: the catalog's default voice)")
    p.add_argument("--quick", action="store_true", help="2 rounds and do not write docs/BENCHMARKS.md")
    p.add_argument("--no-write", dest="write", action="store_false", help="print only")
    p.add_argument("--cpu-bf16", action="store_true",
                   help="our vocoder in bfloat16 (the service's default on CPUs with native bf16); "
                        "default float32, the numerics that match ORT")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.write = 2, False
    args.command = "python bench/engine.py" + "".join(f" {a}" for a in sys.argv[1:])
    return args


# ------------------------------------------------------------------------------ setup


def _ort_session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _items(engine, voice_id: str) -> list[Item]:
    from tts_engine.engine import SynthesisOptions

    items = []
    for text in SENTENCES:
        prepared = engine.prepare(text, SynthesisOptions(voice=voice_id))
        items += [Item(s.text, list(s.ids)) for s in prepared.sentences]
    return items


def _noise(voice):
    from tts_engine.models.vits import NoiseSpec

    return NoiseSpec(noise_scale=0.0, noise_w=0.0, length_scale=voice.length_scale)


def _ort_feed(batch: list[list[int]], voice) -> dict[str, np.ndarray]:
    padded = np.zeros((len(batch), max(map(len, batch))), dtype=np.int64)
    for row, ids in enumerate(batch):
        padded[row, : len(ids)] = ids
    return {
        "input": padded,
        "input_lengths": np.array([len(ids) for ids in batch], dtype=np.int64),
        "scales": np.array([0.0, voice.length_scale, 0.0], dtype=np.float32),
    }


def _ours_timed(model, ids: list[int], voice) -> tuple[np.ndarray, float, float]:
    """What ``TTSEngine.render_batch`` does for one item, with the two stages timed."""
    t0 = time.perf_counter()
    z, frames = model.acoustic(torch.tensor([ids]), torch.tensor([len(ids)]), _noise(voice))
    t1 = time.perf_counter()
    audio = model.vocoder(z, frames).cpu().numpy()[0, : int(frames[0]) * model.hop]
    return audio, t1 - t0, time.perf_counter() - t1


def _settle() -> None:
    """Sleep SETTLE_S, longer while other processes are busy (see the module docstring)."""
    QUIET.calls += 1
    deadline = time.monotonic() + QUIET_WAIT_S
    first = True
    while True:
        start = _cpu_snapshot()
        time.sleep(SETTLE_S)
        if _others_load(start, SETTLE_S) <= QUIET_CORES:
            return
        if first:
            QUIET.waited += 1
            first = False
        if time.monotonic() > deadline:
            QUIET.contended += 1
            return


def _timed(fn):
    _settle()
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _warm_up(engine, model, session, items: list[Item], voice) -> None:
    for item in items:  # every length once: oneDNN / ORT build their kernels per shape
        ours, _, _ = _ours_timed(model, item.ids, voice)
        ref = session.run(None, _ort_feed([item.ids], voice))[0].reshape(-1)
        item.samples = len(ours)
        item.max_diff = float(np.abs(ours - ref).max()) if ours.shape == ref.shape else float("nan")
        next(iter(engine.render_stream(voice.id, item.ids, _noise(voice), None)))


# ------------------------------------------------------------------------------ measurements


def _batch_one(engine, model, session, items: list[Item], voice, rounds: int) -> None:
    """Ours, ORT and our streaming first chunk, alternating per sentence, ``rounds`` times."""
    for r in range(rounds):
        order = items if r % 2 == 0 else items[::-1]
        for item in order:
            # Alternate which runtime goes first, so neither always follows the other.
            first_ours = (r + items.index(item)) % 2 == 0
            for which in (("ours", "ort") if first_ours else ("ort", "ours")):
                if which == "ours":
                    _settle()
                    t0 = time.perf_counter()
                    _, acoustic, vocoder = _ours_timed(model, item.ids, voice)
                    item.ours.append(time.perf_counter() - t0)
                    item.ours_acoustic.append(acoustic)
                    item.ours_vocoder.append(vocoder)
                else:
                    feed = _ort_feed([item.ids], voice)
                    item.ort.append(_timed(lambda: session.run(None, feed))[1])
            stream = engine.render_stream(voice.id, item.ids, _noise(voice), None)
            chunk, seconds = _timed(lambda: next(iter(stream)))
            stream.close()
            item.first_chunk.append(seconds)
            item.first_chunk_samples = len(chunk)


@dataclass
class BatchRow:
    runtime: str
    batch: int
    order: str
    seconds: float      # median total compute time for all sentences
    audio_s: float

    @property
    def throughput(self) -> float:
        return self.audio_s / self.seconds


def _batching(engine, session, items: list[Item], voice, rounds: int) -> list[BatchRow]:
    rate = voice.sample_rate
    audio_s = sum(i.samples for i in items) / rate
    orders = {"list": items, "by length": sorted(items, key=lambda i: len(i.ids))}
    rows = []
    for order_name, ordered in orders.items():
        for size in (1, 4, 8):
            if size == 1 and order_name != "list":
                continue  # the same work
            batches = [ordered[k : k + size] for k in range(0, len(ordered), size)]
            ours_t, ort_t = [], []
            for _ in range(rounds):
                total = 0.0
                for batch in batches:
                    work = [(i.ids, _noise(voice), None) for i in batch]
                    total += _timed(lambda: engine.render_batch(voice.id, work))[1]
                ours_t.append(total)
                total = 0.0
                for batch in batches:
                    feed = _ort_feed([i.ids for i in batch], voice)
                    total += _timed(lambda: session.run(None, feed))[1]
                ort_t.append(total)
            rows.append(BatchRow("ours", size, order_name, statistics.median(ours_t), audio_s))
            rows.append(BatchRow("ORT", size, order_name, statistics.median(ort_t), audio_s))
    return rows


def _cuda_rows(items: list[Item], voice, rounds: int) -> list[tuple[str, int, float]] | str:
    """(precision, batch, RTF) of our engine on CUDA, or why there are none."""
    if not torch.cuda.is_available():
        return "no CUDA device on this machine (torch.cuda.is_available() is False)"
    from tts_engine.engine import TTSEngine
    from tts_engine.settings import Settings

    rows = []
    audio_s = sum(i.samples for i in items) / voice.sample_rate
    for precision in ("fp32", "fp16"):
        engine = TTSEngine(Settings(device="cuda", fp16=precision == "fp16"))
        for size in (1, 8):
            batches = [items[k : k + size] for k in range(0, len(items), size)]
            runs = []
            for r in range(rounds + 1):  # the first round warms up
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for batch in batches:
                    engine.render_batch(voice.id, [(i.ids, _noise(voice), None) for i in batch])
                torch.cuda.synchronize()
                if r:
                    runs.append(time.perf_counter() - t0)
            rows.append((precision, size, statistics.median(runs) / audio_s))
    return rows


# ------------------------------------------------------------------------------ machine


def _cpu_snapshot() -> tuple[float, float, float]:
    """(busy CPU seconds of the whole machine, this process's CPU seconds, wall time)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    busy = (sum(fields[:8]) - fields[3] - fields[4]) / ticks  # all but idle and iowait
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return busy, usage.ru_utime + usage.ru_stime, time.time()


def _others_load(start: tuple[float, float, float], elapsed: float) -> float:
    """Average number of cores other processes kept busy during the run."""
    busy, own, _ = _cpu_snapshot()
    return max(0.0, ((busy - start[0]) - (own - start[1])) / elapsed)


def _machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = re.search(r"Model name:\s*(.+)", lscpu).group(1).strip()
        cpus = re.search(r"^CPU\(s\):\s*(\d+)", lscpu, re.M).group(1)
    except (OSError, subprocess.CalledProcessError, AttributeError):
        model, cpus = platform.processor() or "unknown CPU", str(os.cpu_count())
    with open("/proc/meminfo") as f:
        mem_gib = int(f.readline().split()[1]) / 2**20
    import onnxruntime as ort

    return (f"{model}, {cpus} cores, {mem_gib:.0f} GiB RAM, {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, torch {torch.__version__}, onnxruntime {ort.__version__}")


# ------------------------------------------------------------------------------ report


def _med(values: list[float]) -> float:
    return statistics.median(values)


def _report(args, items, batching, cuda, rate, elapsed, others) -> str:
    audio = sum(i.samples for i in items) / rate
    ours = sum(_med(i.ours) for i in items)
    ort_total = sum(_med(i.ort) for i in items)
    acoustic = sum(_med(i.ours_acoustic) for i in items)
    vocoder = sum(_med(i.ours_vocoder) for i in items)
    ratio = ours / ort_total
    per_sentence = [_med(i.ours) / _med(i.ort) for i in items]
    verdict = "met" if ratio <= 1.0 else "NOT met"
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    t = args.threads
    out = [
        BEGIN,
        "## Engine: torch VITS vs ONNX Runtime (`bench/engine.py`)",
        "",
        f"- Command: `{args.command}` (from the repository root, with `.venv/bin/python`)",
        f"- Machine: {_machine()}",
        f"- Date: {now}; run took {elapsed:.0f} s; other processes kept {others:.1f} of "
        f"{os.cpu_count()} cores busy on average during the run; of {QUIET.calls} timed calls, "
        f"{QUIET.waited} waited for them to go quiet and {QUIET.contended} ran contended anyway",
        f"- Threads: torch.set_num_threads({t}); ORT intra_op_num_threads={t}, inter_op_num_threads=1",
        f"- Our vocoder: {'bfloat16 (cpu_bf16_vocoder)' if args.cpu_bf16 else 'float32 (cpu_bf16_vocoder=False)'}",
        f"- Voice `{args.voice or 'default'}`, noise_scale = noise_w = 0, length_scale = voice default: "
        f"both runtimes produce the same audio (max abs difference over the set: "
        f"{max(i.max_diff for i in items):.1e}). {len(items)} sentences, {audio:.1f} s of audio; "
        f"medians of {args.rounds} rounds, ours and ORT alternating per sentence.",
        "",
        "### Batch 1",
        "",
        f"Real-time factor over the set (sum of per-sentence medians / audio): ours **{ours / audio:.3f}**, "
        f"ORT **{ort_total / audio:.3f}**; ratio ours / ORT **{ratio:.2f}** (target <= 1.0: {verdict}; "
        f"per-sentence ratios {min(per_sentence):.2f}-{max(per_sentence):.2f}, median "
        f"{_med(per_sentence):.2f}).",
        "",
        "| sentence | ids | audio | ours | (acoustic + vocoder) | ORT | ours / ORT | first chunk |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i in items:
        text = i.text if len(i.text) <= 42 else i.text[:40] + "..."
        out.append(
            f"| {text} | {len(i.ids)} | {i.samples / rate:.2f} s | {_med(i.ours) * 1e3:.0f} ms | "
            f"{_med(i.ours_acoustic) * 1e3:.0f} + {_med(i.ours_vocoder) * 1e3:.0f} | "
            f"{_med(i.ort) * 1e3:.0f} ms | {_med(i.ours) / _med(i.ort):.2f} | "
            f"{_med(i.first_chunk) * 1e3:.0f} ms |")
    out += [
        f"| **all** | | {audio:.1f} s | {ours * 1e3:.0f} ms | {acoustic * 1e3:.0f} + {vocoder * 1e3:.0f} | "
        f"{ort_total * 1e3:.0f} ms | **{ratio:.2f}** | |",
        "",
        f"Split of our time: acoustic model (text encoder, durations, flow) "
        f"{acoustic / (acoustic + vocoder):.0%}, HiFi-GAN vocoder {vocoder / (acoustic + vocoder):.0%}.",
        "",
        "### Batching (`render_batch`, padded)",
        "",
        "Throughput = audio seconds produced per second of compute for the whole set, cut into "
        "consecutive batches of the given size.",
        "",
        "| runtime | batch | order | time | audio-s / s | RTF |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in batching:
        out.append(f"| {row.runtime} | {row.batch} | {row.order} | {row.seconds * 1e3:.0f} ms | "
                   f"{row.throughput:.1f} | {1 / row.throughput:.3f} |")
    ours_rows = {(r.batch, r.order): r for r in batching if r.runtime == "ours"}
    b1, b8 = ours_rows.get((1, "list")), ours_rows.get((8, "list"))
    if b1 and b8:
        out += [
            "",
            f"On this CPU, padding costs more than batching saves: at batch 8 (list order) our throughput "
            f"is {b8.throughput / b1.throughput:.0%} of batch 1's, since every item is computed to the "
            f"longest item's length and the cores are already busy at batch 1.",
        ]
    out += [
        "",
        "ORT rows with batch > 1 are for reference only: the Piper export runs padded batches, but "
        "returns no per-item lengths, and a padded item's samples differ slightly from its solo run.",
        "",
        "### Streaming (`render_stream`: first chunk = acoustic + first vocoder chunk)",
        "",
    ]
    first = [_med(i.first_chunk) for i in items]
    whole = [_med(i.ours) for i in items]
    chunk_s = statistics.median(i.first_chunk_samples for i in items) / rate
    longest = max(range(len(items)), key=lambda k: items[k].samples)
    out += [
        f"First chunk ({chunk_s:.2f} s of audio) after a median **{_med(first) * 1e3:.0f} ms** "
        f"(range {min(first) * 1e3:.0f}-{max(first) * 1e3:.0f} ms; column \"first chunk\" above) against "
        f"a median one-shot time of {_med(whole) * 1e3:.0f} ms. For the longest sentence "
        f"({items[longest].samples / rate:.1f} s of audio): {first[longest] * 1e3:.0f} ms vs "
        f"{whole[longest] * 1e3:.0f} ms one-shot.",
        "",
        "### CUDA",
        "",
    ]
    if isinstance(cuda, str):
        out.append(f"Not measured: {cuda}.")
    else:
        out += ["| precision | batch | RTF (ours) |", "|---|---:|---:|"]
        out += [f"| {p} | {b} | {rtf:.4f} |" for p, b, rtf in cuda]
    out.append(END)
    return "\n".join(out)


def _write_section(section: str) -> None:
    """Replace this script's section of docs/BENCHMARKS.md (or append it), leaving the rest."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else (
        "# VoxServe benchmarks\n\nNumbers measured by the scripts in `bench/`. Each script rewrites "
        "only its own section\n(between its `<!-- bench:NAME -->` markers); re-run a script to "
        "refresh its numbers.\n")
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)


if __name__ == "__main__":
    main()
