"""Where Synthesizer memory goes: the engine alone (no Ray), rendering many sentences of varied
length from 6 threads (as the replica's thread pool does), RSS before and after.

    python bench/memory_engine.py MODE [JOBS]

MODE: ``old`` (the previous malloc tuning: 1 GiB trim threshold, no arena cap, oneDNN's default
1024-primitive cache), ``nomkldnn`` (old tuning, oneDNN off), ``current`` (tts_engine/models/
fastpath.py as it is, without trimming), ``current+trim`` (plus ``release_freed_memory()`` after
each job, as the Synthesizer deployment does). Results: docs/BENCHMARKS.md, "Synthesizer memory".
"""

from __future__ import annotations

import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psutil

MODE = sys.argv[1] if len(sys.argv) > 1 else "current"
JOBS = int(sys.argv[2]) if len(sys.argv) > 2 else 80
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

import tts_engine.models.fastpath as fastpath  # noqa: E402

if MODE in ("old", "nomkldnn"):
    fastpath._TRIM_THRESHOLD, fastpath._ARENA_MAX = 1 << 30, 0   # 0: glibc's own default (8 per core)
    os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = "1024"  # the old default
if MODE == "nomkldnn":
    torch.backends.mkldnn.enabled = False
torch.set_num_threads(1)

from tts_engine.engine import SynthesisOptions, TTSEngine  # noqa: E402
from tts_engine.settings import Settings  # noqa: E402

WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches".split()


def main() -> None:
    engine = TTSEngine(Settings(device="cpu"))
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.choice([3, 8, 20, 40, 60]))) + "." for _ in range(JOBS)]
    prepared = [engine.prepare(t, SynthesisOptions(seed=1)) for t in texts]
    engine.model(engine.settings.default_voice)
    proc = psutil.Process()
    print(MODE, "start RSS MB", proc.memory_info().rss >> 20, flush=True)

    def job(p):
        out = engine.render_batch(p.voice.id, p.items())
        if MODE == "current+trim":
            fastpath.release_freed_memory()
        return out

    started, peak = time.time(), 0
    with ThreadPoolExecutor(6) as pool:
        pending = []
        for p in prepared:
            pending.append(pool.submit(job, p))
            if len(pending) >= 3:
                pending.pop(0).result()
                peak = max(peak, proc.memory_info().rss >> 20)
        for f in pending:
            f.result()
    print(MODE, f"jobs {JOBS} end RSS MB {proc.memory_info().rss >> 20} peak MB {peak} time {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
