"""Kokoro benchmark: our torch Kokoro-82M against ONNX Runtime running the shipped int8 graph.

    .venv/bin/python bench/kokoro.py            # full run, rewrites its section of docs/BENCHMARKS.md
    .venv/bin/python bench/kokoro.py --quick    # fewer rounds, print only

What it measures, on one fixed set of phoneme strings (English, Mandarin, Japanese):

1. Batch 1, per sentence: wall time / audio time (real-time factor) of
   - ``ort-int8``: ONNX Runtime on ``kokoro-v1.0.int8.onnx`` (one ``session.run``),
   - ``ours``: ``KokoroModel.acoustic`` + ``decode``, float32,
   - ``ours-q``: the same after ``quantize_dynamic()`` (int8 PL-BERT),
   - ``ours-bf16``: float32 acoustic stage, decoder in bfloat16 (``set_decoder_dtype``),
   - ``ort-float`` (``--with-float-ref``): ONNX Runtime on the float reference graph
     (``tests/kokoro_reference.py``), the graph our float model reproduces.
   All with the same number of intra-op threads (torch.set_num_threads; ORT intra_op_num_threads,
   inter_op 1). Engines alternate sentence by sentence, for several rounds; each sentence's time
   is its median over the rounds, and a row's RTF is the sum of those medians over the total audio.
   Wall time and process CPU time are both reported: on a shared machine the CPU time is the
   steadier measure of work (it includes ORT's pool spinning, torch's OpenMP barrier waits).
2. Our acoustic / decode split.
3. Padded batches of 4 and 8 (ours only): throughput in audio seconds per second.

Shared machines: before each timed call the script pauses 0.1 s and waits (up to 3 s) for the
machine's other processes to leave the CPUs idle; calls that ran contended anyway are counted.
Torch's OpenMP threads meet at a barrier after every parallel op, so a neighbour holding a core
slows torch far more than ONNX Runtime's work-stealing pool: contended numbers measure the
neighbours, and the report says how many there were.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import datetime as dt
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.kokoro_reference import build_float_reference, ort_session, run_reference
from tts_engine.models.kokoro import (
    KokoroModel,
    assemble_kokoro_onnx,
    load_vocab,
    load_voice_packs,
    pad_tokens,
    style_for,
    tokenize,
)

DOC = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- bench:kokoro -->", "<!-- /bench:kokoro -->"
HEADING = "## Kokoro torch vs ONNX Runtime"

SENTENCES = [  # (phonemes, voice)
    ("hɛloʊ! haʊ ɑːɹ juː duːɪŋ tədeɪ?", "jf_alpha"),
    ("ðə skaɪ əbʌv ðə pɔːɹt wʌz ðə kʌlɚ ʌv tɛlɪvɪʒən, tʃuːnd tə ə dɛd tʃænəl.", "jm_kumo"),
    ("ɪts nɑːt ðə fɔːl ðæt kɪlz juː; ɪts ðə sʌdən stɑːp æt ðɪ ɛnd ðæt ɹiːli mætɚz.", "jf_nezumi"),
    ("ɕjɛ↘ɕjɛ↘ ni↓, ʨin→tʰjɛn→ tʰjɛn→ʨʰi↘ xən↓ xau↓.", "jf_gongitsune"),
    ("wo↓mən ʂɻ↘ ɕɥɛ↗ʂəŋ→, mei↗tʰjɛn→ tu→ ʂaŋ↘kʰɤ↘, ʨʰin↓ ni↓ man↘ ji↘tjɛn↓.", "jf_tebukuro"),
    ("koɲɲiʨiβa. kʲoː βa ii teŋkʲi desɨ ne.", "jf_alpha"),
    ("aɕita no kaiɡʲi βa ɡoɡo saɲʥi kaɾa haʥimaɾʲimasɨ. ʥikaɴ ni okuɾenai jo:ni ʃite kɯdasai.", "jm_kumo"),
    ("sɨmʲimaseɴ, moːiʨido jɯʔkɯɾʲi hanaɕite itadake masɨ ka?", "jf_nezumi"),
]


# ------------------------------------------------------------------------------------ machine


def _cpu_busy(interval: float = 0.1) -> float:
    """Fraction of all CPUs busy over ``interval`` (from /proc/stat); 0 where unavailable."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            parts = [int(v) for v in f.readline().split()[1:]]
        idle = parts[3] + parts[4]
        return sum(parts), idle

    try:
        t0, i0 = sample()
        time.sleep(interval)
        t1, i1 = sample()
    except OSError:
        return 0.0
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


@dataclass
class Quiet:
    """Waits for an idle machine before timed calls; counts the calls that could not wait."""

    enabled: bool = True
    waited: int = 0
    contended: int = 0
    calls: int = 0

    def __call__(self) -> None:
        self.calls += 1
        time.sleep(0.1)
        if not self.enabled:
            return
        deadline = time.monotonic() + 3.0
        busy = _cpu_busy()
        if busy > 0.25:
            self.waited += 1
            while busy > 0.25 and time.monotonic() < deadline:
                busy = _cpu_busy()
            if busy > 0.25:
                self.contended += 1


def keep_freed_memory_mapped() -> bool:
    """glibc: keep freed activations mapped (mmap threshold 32 MiB) instead of re-faulting them in.

    The serving process tunes malloc the same way; without it every decoder activation above
    glibc's adaptive threshold is mapped, page-faulted and unmapped on every call.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(-3, 32 * 2**20) == 1 and mallopt(-1, 1 << 30) == 1  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()}-core {model}, torch {torch.__version__}"


# ------------------------------------------------------------------------------------ timing


@dataclass
class Row:
    name: str
    times: dict[int, list[float]] = field(default_factory=dict)  # sentence -> wall seconds per round
    cpu: dict[int, list[float]] = field(default_factory=dict)  # sentence -> CPU seconds per round
    split: dict[int, list[tuple[float, float]]] = field(default_factory=dict)

    def median_total(self) -> float:
        return sum(statistics.median(v) for v in self.times.values())

    def median_cpu(self) -> float:
        return sum(statistics.median(v) for v in self.cpu.values())


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    malloc_tuned = keep_freed_memory_mapped() if not args.no_malloc_tuning else False
    cache = Path(args.cache).expanduser()
    onnx_path = assemble_kokoro_onnx(cache)
    vocab, packs = load_vocab(), load_voice_packs()
    model = KokoroModel.from_onnx(onnx_path)
    quantized = KokoroModel.from_onnx(onnx_path).quantize_dynamic()
    bf16 = KokoroModel.from_onnx(onnx_path).set_decoder_dtype(torch.bfloat16)
    ort_int8 = ort_session(onnx_path, args.threads)
    ort_float = ort_session(build_float_reference(onnx_path, cache), args.threads) if args.with_float_ref else None
    quiet = Quiet(enabled=not args.no_wait)

    inputs = []
    for phonemes, voice in SENTENCES:
        ids = tokenize(phonemes, vocab)
        style = style_for(packs[voice], len(ids))
        inputs.append((ids, style))

    def ours(m: KokoroModel, ids, style) -> tuple[float, float, int]:
        tokens, lengths = pad_tokens([ids])
        t_ac, feats = timed(lambda: m.acoustic(tokens, lengths, style[None], 1.0))
        t_dec, audio = timed(lambda: m.decode(feats))
        return t_ac, t_dec, audio.shape[-1]

    engines = {"ort-int8": None, "ours": model, "ours-q": quantized, "ours-bf16": bf16}
    if ort_float is not None:
        engines["ort-float"] = None
    rows = {name: Row(name) for name in engines}
    samples: dict[int, int] = {}
    # Warm-up (first-call allocations, ORT arena, oneDNN primitives for the first shapes).
    for ids, style in inputs[:2]:
        run_reference(ort_int8, ids, style.numpy())
        for m in (model, quantized, bf16):
            ours(m, ids, style)

    rounds = 2 if args.quick else args.rounds
    for r in range(rounds):
        for i, (ids, style) in enumerate(inputs):
            for name, m in engines.items():
                quiet()
                cpu0 = time.process_time()
                if name.startswith("ort"):
                    session = ort_int8 if name == "ort-int8" else ort_float
                    t, audio = timed(lambda s=session, i=ids, st=style: run_reference(s, i, st.numpy()))
                    if name == "ort-int8":
                        samples.setdefault(i, audio.shape[-1])
                else:
                    t_ac, t_dec, _ = ours(m, ids, style)
                    t = t_ac + t_dec
                    rows[name].split.setdefault(i, []).append((t_ac, t_dec))
                rows[name].times.setdefault(i, []).append(t)
                rows[name].cpu.setdefault(i, []).append(time.process_time() - cpu0)
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)

    audio_s = sum(samples.values()) / 24000
    batch_rows = []
    for size in (4, 8):
        if args.quick and size == 8:
            continue
        items = [inputs[i % len(inputs)] for i in range(size)]
        ids = [x[0] for x in items]
        styles = torch.stack([x[1] for x in items])
        tokens, lengths = pad_tokens(ids)
        times, seconds = [], 0.0
        for _ in range(max(2, rounds // 2)):
            quiet()
            t, (feats, _audio) = timed(lambda t=tokens, n=lengths, st=styles: _batch(model, t, n, st))
            times.append(t)
            seconds = float(feats.frames.sum()) * model.samples_per_frame / 24000
        batch_rows.append((size, statistics.median(times), seconds))

    report = render(args, rows, audio_s, batch_rows, quiet, malloc_tuned)
    print(report)
    if not args.quick:
        write_section(report)


def _batch(model: KokoroModel, tokens, lengths, styles):
    feats = model.acoustic(tokens, lengths, styles, 1.0)
    return feats, model.decode(feats)


def render(args, rows: dict[str, Row], audio_s: float, batch_rows, quiet: Quiet, malloc_tuned: bool) -> str:
    ort = rows["ort-int8"].median_total()
    lines = [
        (f"Measured {dt.date.today().isoformat()} on {machine()}; {args.threads} intra-op threads for "
        f"both runtimes; {len(SENTENCES)} sentences ({audio_s:.1f} s of audio), "
        f"{2 if args.quick else args.rounds} interleaved rounds, per-sentence medians. "
        f"glibc malloc tuning: {'on' if malloc_tuned else 'off'}. "
        f"Timed calls: {quiet.calls}; waited for an idle CPU before {quiet.waited}, "
        f"ran contended anyway: {quiet.contended}."),
        "",
        "Command: `PYTHONPATH=$PWD .venv/bin/python bench/kokoro.py`",
        "",
        "| runtime | wall (sum of medians) | RTF | wall / ORT int8 | CPU time | CPU / ORT int8 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    ort_cpu = rows["ort-int8"].median_cpu()
    for name, row in rows.items():
        total, cpu = row.median_total(), row.median_cpu()
        lines.append(f"| {name} | {total:.2f} s | {total / audio_s:.3f} | {total / ort:.2f}x | "
                     f"{cpu:.2f} s | {cpu / ort_cpu:.2f}x |")
    ac = sum(statistics.median(a for a, _ in v) for v in rows["ours"].split.values())
    dec = sum(statistics.median(d for _, d in v) for v in rows["ours"].split.values())
    lines += ["", (f"Ours, split: acoustic {ac:.2f} s ({ac / audio_s:.3f} RTF), decode {dec:.2f} s "
                  f"({dec / audio_s:.3f} RTF).")]
    if batch_rows:
        lines += ["", "| ours, padded batch | time | audio-s / s |", "|---|---:|---:|"]
        single = rows["ours"].median_total()
        lines.append(f"| 1 (the rows above) | {single:.2f} s | {audio_s / single:.2f} |")
        for size, t, seconds in batch_rows:
            lines.append(f"| {size} | {t:.2f} s | {seconds / t:.2f} |")
    return "\n".join(lines)


def write_section(report: str) -> None:
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    body = f"{BEGIN}\n{report}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + body + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{body}\n"
    DOC.write_text(text, encoding="utf-8")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="2 rounds, no batch 8, print only")
    p.add_argument("--with-float-ref", action="store_true", help="also time ORT on the float reference graph")
    p.add_argument("--no-wait", action="store_true", help="do not wait for an idle CPU before timed calls")
    p.add_argument("--no-malloc-tuning", action="store_true")
    p.add_argument("--cache", default=os.environ.get("VOXSERVE_CACHE", "~/.cache/voxserve"))
    return p.parse_args()


if __name__ == "__main__":
    main()
