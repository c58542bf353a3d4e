"""Voice adaptation by DSP (the working implementation behind "VoiceConditioning").

No zero-shot voice-cloning model can be installed in this deployment, so a reference
voice is *approximated*, never cloned: the default voice's speech is re-shaped with the
WORLD vocoder (pyworld) toward a few measured properties of the reference:

* pitch: median and spread of log-F0 over voiced frames (how it is measured:
  :mod:`tts_engine.audio.world`);
* vocal-tract length: a frequency warp of the spectral envelope (``formant_ratio``,
  estimated by codebook matching: :mod:`tts_engine.audio.formant_codebook`);
* spectral balance: the long-term average envelope in a few bands (``spectral_tilt``).

Identity cues that this cannot move (articulation, accent, rhythm, voice quality beyond
spectral balance) stay those of the default voice, and WORLD vocoding itself costs some
fidelity (a plain analysis/resynthesis of the default voice scores ~0.85-0.9 GE2E cosine
against the original).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from tts_engine.audio.formant_codebook import WARP_MAX, WARP_MIN, estimate_formant_ratio
from tts_engine.audio.world import (
    ANALYSIS_SR,
    FRAME_MS,
    World,
    as_mono,
    f0_stats,
    load_pyworld,
    resample,
    speech_frames,
    world_analyze,
    world_synth,
)
from tts_engine.errors import InvalidInput

# load_pyworld stays importable from here, where it lived before world.py split off
__all__ = [
    "VoiceProfile",
    "adapt_to_profile",
    "analyze_voice",
    "load_pyworld",
    "shift_pitch",
]

# spectral balance bands (Hz); only bands below 0.45 * the clip's sample rate are measured
BAND_EDGES_HZ = (80.0, 250.0, 500.0, 1000.0, 1800.0, 2800.0, 4000.0, 5500.0, 7200.0)
MAX_EQ_DB = 12.0
PEAK_CEILING = 0.99
DEFAULT_TARGET_RMS_DBFS = -20.0
PROFILE_VERSION = 1


# --- profile -------------------------------------------------------------------------------
@dataclass(frozen=True)
class VoiceProfile:
    """What adaptation needs to know about a voice, measured from a clip (JSON-safe)."""

    f0_median_hz: float  # exp(median log-F0) over reliably voiced frames (see world.f0_stats)
    f0_log_std: float  # robust spread of log-F0 (1.4826 * MAD), natural-log units
    formant_ratio: float  # vocal-tract-length warp vs the default voice (1.0); >1 shorter tract
    spectral_tilt: list[float]  # long-term average envelope per band, dB, zero-mean over bands
    band_edges_hz: list[float] = field(default_factory=lambda: list(BAND_EDGES_HZ))
    voiced_fraction: float = 0.0  # share of analysis frames that are voiced
    voiced_seconds: float = 0.0  # amount of voiced speech the profile rests on
    formant_match: float = 0.0  # mean best cosine of the codebook match (0-1; <0.6: unreliable)
    version: int = PROFILE_VERSION

    def to_dict(self) -> dict:
        d = asdict(self)
        d["spectral_tilt"] = [float(v) for v in self.spectral_tilt]
        d["band_edges_hz"] = [float(v) for v in self.band_edges_hz]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> VoiceProfile:
        try:
            tilt = [float(v) for v in data["spectral_tilt"]]
            edges = [float(v) for v in data.get("band_edges_hz", BAND_EDGES_HZ)][: len(tilt) + 1]
            prof = cls(
                f0_median_hz=float(data["f0_median_hz"]),
                f0_log_std=float(data["f0_log_std"]),
                formant_ratio=float(data["formant_ratio"]),
                spectral_tilt=tilt,
                band_edges_hz=edges,
                voiced_fraction=float(data.get("voiced_fraction", 0.0)),
                voiced_seconds=float(data.get("voiced_seconds", 0.0)),
                formant_match=float(data.get("formant_match", 0.0)),
                version=int(data.get("version", PROFILE_VERSION)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed voice profile: {exc}", field="voice_profile") from exc
        if len(prof.band_edges_hz) != len(prof.spectral_tilt) + 1:
            raise InvalidInput("voice profile bands and edges disagree", field="voice_profile")
        nums = [prof.f0_median_hz, prof.f0_log_std, prof.formant_ratio, *prof.spectral_tilt]
        if not all(math.isfinite(v) for v in nums) or prof.f0_median_hz <= 0 or prof.formant_ratio <= 0:
            raise InvalidInput("voice profile has out-of-range values", field="voice_profile")
        return prof


# --- spectral balance --------------------------------------------------------------------------
def _band_levels(w: World, frames: np.ndarray, edges: list[float]) -> np.ndarray:
    """Mean dB (over frames) of each band's mean power, zero-mean across the bands."""
    freqs = w.freqs
    db = 10 * np.log10(w.sp[frames] + 1e-20)
    cols = []
    for lo, hi in itertools.pairwise(edges):
        m = (freqs >= lo) & (freqs < hi)
        if not m.any():  # band narrower than a bin: nearest bin
            m = np.zeros_like(freqs, dtype=bool)
            m[int(np.argmin(np.abs(freqs - math.sqrt(lo * hi))))] = True
        cols.append(db[:, m].mean(axis=1))
    bands = np.stack(cols, axis=1)
    bands -= bands.mean(axis=1, keepdims=True)
    return bands.mean(axis=0)


def _usable_edges(sample_rate: int) -> list[float]:
    limit = 0.45 * sample_rate
    edges = [e for e in BAND_EDGES_HZ if e <= limit]
    if len(edges) < 3:
        raise InvalidInput("sample rate too low to analyse a voice", field="sample_rate")
    return edges


def _eq_curve_db(freqs: np.ndarray, edges: list[float], diff_db: np.ndarray) -> np.ndarray:
    """Smooth EQ (dB) through band differences at the band centres: linear over log-frequency,
    flat beyond the outer centres, limited to +-MAX_EQ_DB."""
    centres = np.sqrt(np.asarray(edges[:-1]) * np.asarray(edges[1:]))
    d = np.clip(diff_db, -MAX_EQ_DB, MAX_EQ_DB)
    return np.interp(np.log(np.maximum(freqs, 1.0)), np.log(centres), d)


# --- level ---------------------------------------------------------------------------------------------
def _active_rms(y: np.ndarray, fs: int) -> float:
    """RMS over 20 ms frames within 40 dB of the loudest frame (pauses don't count)."""
    n = max(1, int(0.02 * fs))
    m = len(y) // n
    if m == 0:
        return float(np.sqrt(np.mean(y**2))) if len(y) else 0.0
    e = np.mean(y[: m * n].reshape(m, n) ** 2, axis=1)
    keep = e >= e.max() * 1e-4
    return float(np.sqrt(np.mean(e[keep]))) if keep.any() else 0.0


def _limit(y: np.ndarray, fs: int, ceiling: float = PEAK_CEILING) -> np.ndarray:
    """Look-ahead peak limiter: a smooth gain that is never above what keeps every sample
    within 0.97 * ceiling (min-filter then box smoothing of the same width), then a hard
    safety clip at ``ceiling``."""
    thresh = 0.97 * ceiling
    a = np.abs(y)
    if a.size == 0 or a.max() <= thresh:
        return y
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    half = max(1, int(0.003 * fs))
    width = 2 * half + 1
    need = np.minimum(1.0, thresh / np.maximum(a, 1e-12))
    g = minimum_filter1d(need, size=width, mode="nearest")
    g = uniform_filter1d(g, size=width, mode="nearest")
    return np.clip(y * np.minimum(g, need), -ceiling, ceiling)


def _finish(y: np.ndarray, fs: int, target_rms_dbfs: float | None, ref_rms: float | None = None) -> np.ndarray:
    """Loudness to ``target_rms_dbfs`` (active-speech RMS) or to ``ref_rms``, then limit."""
    y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    rms = _active_rms(y, fs)
    if rms > 1e-8:
        if target_rms_dbfs is not None:
            y = y * (10 ** (target_rms_dbfs / 20) / rms)
        elif ref_rms is not None and ref_rms > 1e-8:
            y = y * (ref_rms / rms)
    return _limit(y, fs).astype(np.float32)


# --- public API ----------------------------------------------------------------------------------------
def analyze_voice(audio: np.ndarray, sample_rate: int, f0_method: str = "harvest") -> VoiceProfile:
    """Measure a reference clip (mono, any rate; analysed at 16 kHz)."""
    x = as_mono(audio)
    if sample_rate <= 0:
        raise InvalidInput("sample_rate must be positive", field="sample_rate")
    if len(x) < 0.5 * sample_rate:
        raise InvalidInput("reference audio is shorter than 0.5 s", field="audio")
    edges = _usable_edges(min(sample_rate, ANALYSIS_SR))
    fs = min(ANALYSIS_SR, sample_rate)
    if sample_rate != fs:
        x = resample(x, sample_rate, fs)
    peak = np.max(np.abs(x))
    if peak < 1e-4:
        raise InvalidInput("reference audio is silent", field="audio")
    x = x / peak * 0.5  # level does not matter to any measure; keeps WORLD in range
    w = world_analyze(x, fs, f0_method)
    voiced = w.f0 > 0
    if voiced.sum() < 20:  # < 0.1 s of voicing
        raise InvalidInput("no voiced speech found in the reference audio", field="audio")
    med, spread = f0_stats(w)
    frames = speech_frames(w)
    ratio, match = estimate_formant_ratio(w, frames, sample_rate)
    tilt = _band_levels(w, frames, edges)
    return VoiceProfile(
        f0_median_hz=float(math.exp(med)),
        f0_log_std=float(spread),
        formant_ratio=ratio,
        spectral_tilt=[round(float(v), 3) for v in tilt],
        band_edges_hz=list(edges),
        voiced_fraction=float(voiced.mean()),
        voiced_seconds=float(voiced.sum() * FRAME_MS / 1000),
        formant_match=match,
    )


def _warp_envelope(env: np.ndarray, alpha: float, log_domain: bool = True) -> np.ndarray:
    """new(f) = env(f / alpha) along the linear-frequency axis (edge value beyond Nyquist)."""
    n = env.shape[1]
    pos = np.clip(np.arange(n, dtype=np.float64) / alpha, 0, n - 1)
    i0 = np.minimum(np.floor(pos).astype(int), n - 2)
    frac = pos - i0
    src = np.log(np.maximum(env, 1e-20)) if log_domain else env
    out = src[:, i0] * (1 - frac) + src[:, i0 + 1] * frac
    return np.exp(out) if log_domain else out


def adapt_to_profile(
    audio: np.ndarray,
    sample_rate: int,
    target: VoiceProfile,
    source: VoiceProfile | None = None,
    strength: float = 1.0,
    *,
    target_rms_dbfs: float | None = DEFAULT_TARGET_RMS_DBFS,
    f0_method: str = "harvest",
) -> np.ndarray:
    """Re-shape ``audio`` (the default voice) toward ``target``; same length, float32.

    ``source`` is the long-term profile of the voice being adapted (e.g. the default voice
    measured once over several sentences). With it, every sentence gets the same pitch
    mapping and warp; without it, this utterance is measured and used as its own source.
    ``strength`` in [0, 1] interpolates every change (0: only the level/limiter stage).

    Steps: WORLD analysis (harvest + StoneMask F0 with octave repair, CheapTrick, D4C);
    log-F0 mapped ``median_s -> median_t`` with deviations scaled by the spread ratio
    (clamped to 0.67-1.5); envelope and aperiodicity warped ``E(f / a)`` with
    ``a = target.formant_ratio / source.formant_ratio`` (clamped to 0.7-1.5); an EQ
    (<= +-12 dB, linear over log f between band centres) from the target's band levels minus
    those of the warped envelope; WORLD synthesis; loudness to ``target_rms_dbfs`` of active
    speech (``None``: the input's level), look-ahead limiter, peaks <= 0.99. ~0.25 x real
    time on one idle core at 22.05 kHz.
    """
    x = as_mono(audio)
    if sample_rate <= 0:
        raise InvalidInput("sample_rate must be positive", field="sample_rate")
    if not 0.0 <= strength <= 1.0:
        raise InvalidInput("strength must be within [0, 1]", field="strength")
    n = len(x)
    if n < int(0.05 * sample_rate) or np.max(np.abs(x)) < 1e-5:
        return _finish(x, sample_rate, None, None)
    in_rms = _active_rms(x, sample_rate)
    if strength == 0.0:  # no vocoding at all, only level and limiter
        return _finish(x, sample_rate, target_rms_dbfs, in_rms)
    w = world_analyze(x, sample_rate, f0_method)
    voiced = w.f0 > 0

    # pitch: log-F0 median and spread
    if voiced.sum() >= 5:
        if source is not None:
            src_med, src_sd = math.log(source.f0_median_hz), source.f0_log_std
        else:
            src_med, src_sd = f0_stats(w)
        tgt_med, tgt_sd = math.log(target.f0_median_hz), target.f0_log_std
        new_med = src_med + strength * (tgt_med - src_med)
        spread = (tgt_sd / src_sd) if src_sd > 1e-3 and tgt_sd > 1e-3 else 1.0
        spread = float(np.clip(spread, 0.67, 1.5)) ** strength
        lf = np.log(w.f0[voiced])
        w.f0 = w.f0.copy()
        w.f0[voiced] = np.clip(np.exp(new_med + (lf - src_med) * spread), 40.0, 1100.0)

    # vocal tract length: warp envelope and aperiodicity
    if source is not None:
        src_ratio = source.formant_ratio
    else:  # measured like analyze_voice does (the envelope does not depend on the rate)
        src_ratio, match = estimate_formant_ratio(w, speech_frames(w), sample_rate)
        src_ratio = src_ratio if match > 0 else 1.0
    alpha = float(np.clip((target.formant_ratio / src_ratio) ** strength, WARP_MIN, WARP_MAX))
    if abs(alpha - 1.0) > 1e-3:
        w.sp = _warp_envelope(w.sp, alpha)
        w.ap = np.clip(_warp_envelope(w.ap, alpha, log_domain=False), 0.0, 1.0)

    # spectral balance: EQ from band differences, measured after the warp
    edges = [e for e in target.band_edges_hz if e <= 0.45 * sample_rate]
    k = len(edges) - 1
    frames = speech_frames(w)
    if k >= 2 and len(frames) > 0 and strength > 0:
        current = _band_levels(w, frames, edges)
        tgt = np.asarray(target.spectral_tilt[:k], dtype=np.float64)
        tgt = tgt - tgt.mean()
        eq_db = strength * _eq_curve_db(w.freqs, edges, tgt - current)
        w.sp = w.sp * (10 ** (eq_db / 10))[None, :]

    y = world_synth(w, n)
    return _finish(y, sample_rate, target_rms_dbfs, in_rms)


def shift_pitch(audio: np.ndarray, sample_rate: int, semitones: float) -> np.ndarray:
    """Every voiced F0 value times 2 ** (semitones / 12); envelope, timing and length kept,
    loudness kept (active RMS), peaks limited to 0.99. ``semitones == 0`` returns ``audio``."""
    if semitones == 0:
        return audio
    if not math.isfinite(semitones) or abs(semitones) > 24:
        raise InvalidInput("pitch must be within +-24 semitones", field="pitch")
    x = as_mono(audio)
    if len(x) < int(0.05 * sample_rate) or np.max(np.abs(x)) < 1e-5:
        return np.asarray(audio, dtype=np.float32)
    in_rms = _active_rms(x, sample_rate)
    w = world_analyze(x, sample_rate)
    w.f0 = w.f0 * (2.0 ** (semitones / 12.0))
    y = world_synth(w, len(x))
    return _finish(y, sample_rate, None, in_rms)
