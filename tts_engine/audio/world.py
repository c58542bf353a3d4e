"""The WORLD vocoder (pyworld) as voice adaptation uses it: analysis, synthesis, F0.

Both measuring a reference (:func:`tts_engine.audio.adapt.analyze_voice`, the formant
codebook) and re-shaping speech (:func:`tts_engine.audio.adapt.adapt_to_profile`) stand on
the same WORLD analysis; it lives here so that they read the same F0 and envelope.

Pitch measurement
-----------------
F0 is harvest + StoneMask (dio is available but reads the default voice an octave high in
most frames). The default voice (~95-120 Hz, weak fundamental, some creak) still gets
octave-up frames from harvest, so: the median is taken over the more periodic half of
voiced frames (low D4C aperiodicity), frames more than 0.75 octave from it are moved back
by whole octaves before the envelope is analysed (a legitimate excursion that large is
folded too), and the spread is a MAD over the folded contour. Very low voices (< ~80 Hz)
still read ~15-30 % high.
"""

from __future__ import annotations

import importlib.metadata
import math
import sys
import threading
import types
from dataclasses import dataclass

import numpy as np

from tts_engine.errors import InvalidInput

__all__ = [
    "ANALYSIS_SR",
    "F0_CEIL",
    "F0_FLOOR",
    "FRAME_MS",
    "World",
    "as_mono",
    "f0_stats",
    "load_pyworld",
    "resample",
    "speech_frames",
    "world_analyze",
    "world_synth",
]

ANALYSIS_SR = 16000  # voices are measured at this rate (references come at any rate)
FRAME_MS = 5.0
F0_FLOOR = 50.0
F0_CEIL = 800.0

_pw_lock = threading.Lock()
_pw_module: types.ModuleType | None = None


def load_pyworld() -> types.ModuleType:
    """Import pyworld. Its ``__init__`` reads its version through ``pkg_resources``, which
    setuptools >= 81 no longer ships; when that import is what fails, a throw-away stand-in
    that answers from importlib.metadata is put in place for the import only."""
    global _pw_module
    if _pw_module is not None:
        return _pw_module
    with _pw_lock:
        if _pw_module is None:
            try:
                import pyworld
            except ModuleNotFoundError as exc:
                if exc.name != "pkg_resources":
                    raise
                shim = types.ModuleType("pkg_resources")
                shim.get_distribution = lambda name: types.SimpleNamespace(  # type: ignore[attr-defined]
                    version=importlib.metadata.version(name)
                )
                sys.modules["pkg_resources"] = shim
                try:
                    import pyworld
                finally:
                    if sys.modules.get("pkg_resources") is shim:
                        del sys.modules["pkg_resources"]
            _pw_module = pyworld
    return _pw_module


@dataclass
class World:
    """One WORLD analysis; adaptation replaces f0/sp/ap before handing it to :func:`world_synth`."""

    f0: np.ndarray
    sp: np.ndarray  # power spectral envelope [frames, fft//2+1]
    ap: np.ndarray
    fs: int

    @property
    def freqs(self) -> np.ndarray:
        return np.linspace(0.0, self.fs / 2, self.sp.shape[1])


def as_mono(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    """``audio`` as 1-D float64, the form WORLD takes; bad input is the caller's error."""
    x = np.asarray(audio)
    if x.ndim == 2 and min(x.shape) <= 8:  # [n, ch] or [ch, n]
        x = x.mean(axis=int(np.argmin(x.shape)))
    if x.ndim != 1:
        raise InvalidInput(f"{name} must be mono 1-D audio", field=name)
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise InvalidInput(f"{name} contains NaN or Inf", field=name)
    return x


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """soxr HQ kept in float64 (encoders.resample returns float32, WORLD analyses float64)."""
    import soxr

    return soxr.resample(x.astype(np.float64), sr_in, sr_out, quality="HQ")


def _track_f0(x: np.ndarray, fs: int, f0_method: str = "harvest") -> tuple[np.ndarray, np.ndarray]:
    """F0 every FRAME_MS: harvest (default) or dio, refined by StoneMask.

    The default voice (low, ~95-120 Hz, weak fundamental, some creak) is hard for both: over
    50-800 Hz harvest puts roughly 5-20 % of its voiced frames an octave up, dio far more
    (its median reads ~165 Hz). world_analyze repairs the worst of it."""
    pw = load_pyworld()
    if f0_method == "harvest":
        f0, t = pw.harvest(x, fs, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_MS)
    elif f0_method == "dio":
        f0, t = pw.dio(x, fs, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_MS)
    else:
        raise ValueError(f"unknown f0_method {f0_method!r}")
    f0 = pw.stonemask(x, f0, t, fs)
    return f0, t


def world_analyze(x: np.ndarray, fs: int, f0_method: str = "harvest", with_ap: bool = True) -> World:
    """WORLD analysis with octave-error repair: F0 frames more than 0.75 octave from the
    reliable median (see _reliable_log_f0_median) are moved back by whole octaves and
    re-refined, before the envelope and aperiodicity (both F0-dependent) are taken."""
    pw = load_pyworld()
    x = np.ascontiguousarray(x, dtype=np.float64)
    f0, t = _track_f0(x, fs, f0_method)
    fft_size = _fft_size(fs)
    voiced = f0 > 0
    if voiced.sum() >= 10:
        ap0 = pw.d4c(x, f0, t, fs, fft_size=fft_size)
        med = _reliable_log_f0_median(f0, ap0, fs)
        octs = (np.log(np.where(voiced, f0, 1.0)) - med) / math.log(2)
        shift = np.where(voiced & (np.abs(octs) > 0.75), np.round(octs), 0.0)
        if np.any(shift):
            f0 = pw.stonemask(x, f0 * 2.0 ** -shift, t, fs)
    sp = pw.cheaptrick(x, f0, t, fs, f0_floor=F0_FLOOR, fft_size=fft_size)
    ap = pw.d4c(x, f0, t, fs, fft_size=fft_size) if with_ap else np.empty(0)
    return World(f0=f0, sp=sp, ap=ap, fs=fs)


def _fft_size(fs: int) -> int:
    """CheapTrick's FFT size for F0_FLOOR (what pyworld picks by default)."""
    return int(2 ** math.ceil(math.log2(3.0 * fs / F0_FLOOR + 1)))


def world_synth(w: World, n_samples: int) -> np.ndarray:
    """Synthesize ``w``, cut or zero-padded to ``n_samples`` so output length equals input."""
    pw = load_pyworld()
    y = pw.synthesize(
        np.ascontiguousarray(w.f0), np.ascontiguousarray(w.sp), np.ascontiguousarray(w.ap),
        w.fs, FRAME_MS,
    )
    if len(y) >= n_samples:
        return y[:n_samples]
    return np.pad(y, (0, n_samples - len(y)))


def speech_frames(w: World) -> np.ndarray:
    """Indices of voiced frames that are not among the quietest 30 % of voiced frames."""
    voiced = np.flatnonzero(w.f0 > 0)
    if len(voiced) == 0:
        return voiced
    level = 10 * np.log10(np.mean(w.sp[voiced], axis=1) + 1e-20)
    return voiced[level >= np.percentile(level, 30)]


def _reliable_log_f0_median(f0: np.ndarray, ap: np.ndarray, fs: int) -> float:
    """Median log-F0 over the *more periodic half* of voiced frames (mean D4C aperiodicity
    in 100-1500 Hz below the median of voiced frames). Those frames carry reliable F0
    estimates; the others hold most octave errors and voicing over-extensions into
    transitions. On WORLD renderings of the default voice at known F0 this puts the median
    within ~5 % of the truth for voices of ~95-250 Hz (all voiced frames: up to 25 % high);
    below ~80 Hz it still reads high (a 69 Hz voice measures ~80-90 Hz)."""
    voiced = np.flatnonzero(f0 > 0)
    lf = np.log(f0[voiced])
    if ap.size and len(voiced) >= 10:
        freqs = np.linspace(0.0, fs / 2, ap.shape[1])
        m = (freqs >= 100.0) & (freqs <= 1500.0)
        ap_db = 20 * np.log10(np.maximum(ap[voiced][:, m], 1e-6)).mean(axis=1)
        lf = lf[ap_db <= np.median(ap_db)]
    return float(np.median(lf))


def f0_stats(w: World) -> tuple[float, float]:
    """(median, robust spread) of log-F0. Median: _reliable_log_f0_median. Spread: 1.4826 x
    MAD over all voiced frames, frames more than 0.75 octave from the median folded back by
    whole octaves first (octave errors would otherwise dominate it)."""
    voiced = w.f0 > 0
    if not voiced.any():
        raise ValueError("no voiced frames")
    med = _reliable_log_f0_median(w.f0, w.ap, w.fs)
    octs = (np.log(w.f0[voiced]) - med) / math.log(2)
    octs = np.where(np.abs(octs) > 0.75, octs - np.round(octs), octs)
    spread = 1.4826 * float(np.median(np.abs(octs))) * math.log(2)
    return med, spread
