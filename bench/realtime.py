"""Realtime WebSocket: time from the last fragment of a sentence to its first audio byte.

    PYTHONPATH=. python bench/realtime.py            # starts a local Ray Serve app; prints a table

A simulated LLM (a sender thread) streams the sentences word by word, one fragment every
``TOKEN_GAP_S``; for each sentence the clock starts when its last fragment (the one with its
full stop or question mark) is sent and stops at the first binary frame after its
``sentence_start``. A sentence is complete once the next fragment arrives (a full stop may be
"3." of "3.5"), so the gap is part of what is measured, as it is in a real conversation.
Numbers, not pass/fail; results go to docs/BENCHMARKS.md by hand.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serving import free_port, machine_info, start_ray, start_serve, wait_ready  # noqa: E402

TOKEN_GAP_S = 0.03
SENTENCES = [
    "Sure, I can help with that.",
    "Your order shipped this morning and should arrive on Thursday.",
    "Is there anything else you would like to know?",
    "The weather in Paris will be sunny with a high of twenty degrees.",
    "Let me check the latest numbers for you.",
    "That flight leaves at seven in the evening from gate twelve.",
]
ROUNDS = 3


def run_session(url: str, fmt: str) -> list[float]:
    """One conversation streamed word by word (a sender thread, like an LLM); per sentence, the
    seconds from sending its last fragment to receiving its first audio byte."""
    import threading

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    sent_at: dict[int, float] = {}
    first_audio: dict[int, float] = {}
    lengths: dict[int, float] = {}
    starts: dict[int, float] = {}
    with connect(url, open_timeout=60, max_size=None) as ws:
        ws.send(json.dumps({"type": "config", "format": fmt, "timestamps": False}))
        assert json.loads(ws.recv(timeout=60))["type"] == "ready"

        def llm() -> None:
            for i, sentence in enumerate(SENTENCES):
                for j, word in enumerate(sentence.split(" ")):
                    time.sleep(TOKEN_GAP_S)
                    ws.send(json.dumps({"type": "text", "text": (" " if i or j else "") + word}))
                sent_at[i] = time.perf_counter()
            ws.send(json.dumps({"type": "close"}))

        sender = threading.Thread(target=llm)
        sender.start()
        current = None
        while True:
            frame = ws.recv(timeout=120)
            if isinstance(frame, bytes):
                if current is not None and current not in first_audio:
                    first_audio[current] = time.perf_counter()
                continue
            event = json.loads(frame)
            if event["type"] == "sentence_start":
                current = event["index"]
                starts[current] = event["start_s"]
            elif event["type"] == "sentence_end":
                lengths[event["index"]] = event["end_s"] - starts[event["index"]]
                try:
                    ws.send(json.dumps({"type": "ack", "index": event["index"]}))
                except ConnectionClosed:  # the last sentence: the server may have closed already
                    pass
            elif event["type"] == "error":
                raise RuntimeError(event)
            elif event["type"] == "done":
                break
        sender.join()
    STALLS.append(stalled(first_audio, lengths))
    return [first_audio[i] - sent_at[i] for i in range(len(SENTENCES))]


STALLS: list[float] = []


def stalled(first_audio: dict[int, float], lengths: dict[int, float]) -> float:
    """Seconds a listener playing from the first byte would wait for audio after it began:
    sentence k plays from max(its arrival, the end of sentence k-1)."""
    order = sorted(first_audio)
    clock = first_audio[order[0]]
    waited = 0.0
    for i in order:
        if first_audio[i] > clock:
            waited += first_audio[i] - clock
            clock = first_audio[i]
        clock += lengths[i]
    return waited


def main() -> int:
    import ray
    from ray import serve

    from serve_app.app import build_app

    store_dir = tempfile.mkdtemp(prefix="voxbench-ws-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    start_ray()
    try:
        start_serve(port)
        serve.run(build_app({"store": f"file://{store_dir}", "public_base_url": base, "model_families": ["piper"]}),
                  name="bench", route_prefix="/")
        wait_ready(base)
        url = base.replace("http://", "ws://") + "/v1/tts/ws"
        run_session(url, "pcm")  # warm
        rows = []
        for fmt in ("pcm", "mp3"):
            STALLS.clear()
            lat = [x for _ in range(ROUNDS) for x in run_session(url, fmt)]
            first = [x for k, x in enumerate(lat) if k % len(SENTENCES) == 0]
            later = [x for k, x in enumerate(lat) if k % len(SENTENCES)]
            rows.append((fmt, statistics.median(first), max(first), statistics.median(later), max(later),
                         max(STALLS), len(lat)))
    finally:
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(store_dir, ignore_errors=True)
    print(f"\nMachine: {machine_info()}; Ray Serve local, 2 CPUs, Piper voice, LLM gap {TOKEN_GAP_S * 1000:.0f} ms")
    print("| format | first sentence: median | max | later sentences: median | max | playback stall (worst "
          "session) | sentences |")
    print("|---|---|---|---|---|---|---|")
    for fmt, first, first_max, later, later_max, stall, n in rows:
        print(f"| {fmt} | {first * 1000:.0f} ms | {first_max * 1000:.0f} ms | {later * 1000:.0f} ms | "
              f"{later_max * 1000:.0f} ms | {stall * 1000:.0f} ms | {n} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
