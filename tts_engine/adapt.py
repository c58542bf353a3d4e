"""Voice adaptation by DSP (the working implementation behind "VoiceConditioning").

No zero-shot voice-cloning model can be installed in this deployment, so a reference
voice is *approximated*, never cloned: the default voice's speech is re-shaped with the
WORLD vocoder (pyworld) toward a few measured properties of the reference:

* pitch: median and spread of log-F0 over voiced frames;
* vocal-tract length: a frequency warp of the spectral envelope (``formant_ratio``);
* spectral balance: the long-term average envelope in a few bands (``spectral_tilt``).

Identity cues that this cannot move (articulation, accent, rhythm, voice quality beyond
spectral balance) stay those of the default voice.

``formant_ratio`` estimation (VTLN-style codebook matching)
-----------------------------------------------------------
The neutral reference is a codebook of 48 spectral-envelope shapes of the default voice
(en_US-joe-medium, an adult male), tabulated below (``_NEUTRAL_CODEBOOK``; rebuilt with
:func:`build_neutral_codebook`). For a clip, every voiced, non-quiet frame's WORLD
(CheapTrick) envelope is taken on a log-frequency axis, tilt-removed (a straight line in
dB over log f is subtracted) and unit-normalised in the 200-5000 Hz band. For each warp
factor ``a`` in 0.7-1.5 the codebook is warped, ``C(f / a)``, and each frame scores its
best-matching (cosine) codeword; ``formant_ratio`` is the ``a`` with the highest mean score
(refined by parabolic interpolation). Matching frames against the nearest of many shapes
makes the estimate largely independent of what is being said, and removing the tilt keeps
spectral balance (handled separately) out of it. 1.0 is the default voice; a typical adult
female is ~1.15-1.2, a child ~1.3 and more. On WORLD-warped copies of the default voice
the known warp is recovered within ~2-3 % from a single 4-5 s clip.
"""

from __future__ import annotations

import base64
import importlib.metadata
import math
import sys
import threading
import types
import zlib
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from .errors import InvalidInput

__all__ = [
    "VoiceProfile", "analyze_voice", "adapt_to_profile", "shift_pitch", "load_pyworld",
    "build_neutral_codebook",
]

# --- pyworld -------------------------------------------------------------------------------
_pw_lock = threading.Lock()
_pw_module = None


def load_pyworld():
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


# --- constants -----------------------------------------------------------------------------
ANALYSIS_SR = 16000  # analyze_voice works at this rate (references come at any rate)
FRAME_MS = 5.0
F0_FLOOR = 50.0
F0_CEIL = 800.0
# spectral balance bands (Hz); only bands below 0.45 * the clip's sample rate are measured
BAND_EDGES_HZ = (80.0, 250.0, 500.0, 1000.0, 1800.0, 2800.0, 4000.0, 5500.0, 7200.0)
MAX_EQ_DB = 12.0
WARP_MIN, WARP_MAX = 0.7, 1.5
_ALPHAS = np.exp(np.linspace(math.log(WARP_MIN), math.log(WARP_MAX), 81))
# codebook grid (log-spaced) and the band the matching looks at
_CB_LO, _CB_HI, _CB_BINS = 120.0, 7600.0, 80
_CB_GRID = np.geomspace(_CB_LO, _CB_HI, _CB_BINS)
_MATCH_LO, _MATCH_HI, _MATCH_BINS = 200.0, 5000.0, 64
_MAX_MATCH_FRAMES = 1500
PEAK_CEILING = 0.99
DEFAULT_TARGET_RMS_DBFS = -20.0
PROFILE_VERSION = 1


# --- profile -------------------------------------------------------------------------------
@dataclass(frozen=True)
class VoiceProfile:
    """What adaptation needs to know about a voice, measured from a clip (JSON-safe)."""

    f0_median_hz: float  # exp(median log-F0) over voiced frames
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
    def from_dict(cls, data: dict) -> "VoiceProfile":
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


# --- WORLD helpers ---------------------------------------------------------------------------
@dataclass
class _World:
    f0: np.ndarray
    sp: np.ndarray  # power spectral envelope [frames, fft//2+1]
    ap: np.ndarray
    fs: int

    @property
    def freqs(self) -> np.ndarray:
        return np.linspace(0.0, self.fs / 2, self.sp.shape[1])


def _as_mono(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim == 2 and min(x.shape) <= 8:  # [n, ch] or [ch, n]
        x = x.mean(axis=int(np.argmin(x.shape)))
    if x.ndim != 1:
        raise InvalidInput(f"{name} must be mono 1-D audio", field=name)
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise InvalidInput(f"{name} contains NaN or Inf", field=name)
    return x


def _world_analyze(x: np.ndarray, fs: int, f0_method: str = "dio", with_ap: bool = True) -> _World:
    pw = load_pyworld()
    x = np.ascontiguousarray(x, dtype=np.float64)
    if f0_method == "harvest":
        f0, t = pw.harvest(x, fs, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_MS)
    elif f0_method == "dio":
        f0, t = pw.dio(x, fs, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_MS)
        f0 = pw.stonemask(x, f0, t, fs)
    else:
        raise ValueError(f"unknown f0_method {f0_method!r}")
    sp = pw.cheaptrick(x, f0, t, fs, f0_floor=F0_FLOOR)
    ap = pw.d4c(x, f0, t, fs, fft_size=(sp.shape[1] - 1) * 2) if with_ap else np.empty(0)
    return _World(f0=f0, sp=sp, ap=ap, fs=fs)


def _world_synth(w: _World, n_samples: int) -> np.ndarray:
    pw = load_pyworld()
    y = pw.synthesize(
        np.ascontiguousarray(w.f0), np.ascontiguousarray(w.sp), np.ascontiguousarray(w.ap),
        w.fs, FRAME_MS,
    )
    if len(y) >= n_samples:
        return y[:n_samples]
    return np.pad(y, (0, n_samples - len(y)))


def _speech_frames(w: _World) -> np.ndarray:
    """Indices of voiced frames that are not among the quietest 30 % of voiced frames."""
    voiced = np.flatnonzero(w.f0 > 0)
    if len(voiced) == 0:
        return voiced
    level = 10 * np.log10(np.mean(w.sp[voiced], axis=1) + 1e-20)
    return voiced[level >= np.percentile(level, 30)]


def _log_f0_stats(f0: np.ndarray) -> tuple[float, float]:
    lf = np.log(f0[f0 > 0])
    med = float(np.median(lf))
    spread = 1.4826 * float(np.median(np.abs(lf - med)))
    return med, spread


# --- spectral balance --------------------------------------------------------------------------
def _band_levels(w: _World, frames: np.ndarray, edges: list[float]) -> np.ndarray:
    """Mean dB (over frames) of each band's mean power, zero-mean across the bands."""
    freqs = w.freqs
    db = 10 * np.log10(w.sp[frames] + 1e-20)
    cols = []
    for lo, hi in zip(edges[:-1], edges[1:]):
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


# --- formant ratio: codebook matching -------------------------------------------------------------
_MATCH_GRID = np.geomspace(_MATCH_LO, _MATCH_HI, _MATCH_BINS)
_MATCH_X = np.log(_MATCH_GRID)


def _detrend_normalise(rows: np.ndarray) -> np.ndarray:
    """Remove a straight line (dB over log f) from each row and scale rows to unit norm."""
    x = _MATCH_X - _MATCH_X.mean()
    r = rows - rows.mean(axis=1, keepdims=True)
    r = r - np.outer(r @ x / (x @ x), x)
    return r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-9)


def _envelope_rows(w: _World, frames: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """dB envelopes of ``frames`` resampled onto a log-frequency ``grid``."""
    freqs = w.freqs
    db = 10 * np.log10(w.sp[frames] + 1e-20)
    pos = np.interp(grid, freqs, np.arange(len(freqs), dtype=np.float64))
    i0 = np.clip(np.floor(pos).astype(int), 0, len(freqs) - 2)
    frac = pos - i0
    return db[:, i0] * (1 - frac) + db[:, i0 + 1] * frac


def build_neutral_codebook(clips: list[np.ndarray], sample_rate: int, n_codewords: int = 48,
                           seed: int = 0) -> np.ndarray:
    """k-means codebook [n_codewords, _CB_BINS] (dB, row mean removed) of the spectral
    envelopes of ``clips``: how ``_NEUTRAL_CODEBOOK`` was made from the default voice."""
    from scipy.cluster.vq import kmeans2

    rows = []
    for clip in clips:
        x = _as_mono(clip)
        if sample_rate != ANALYSIS_SR:
            x = _resample(x, sample_rate, ANALYSIS_SR)
        w = _world_analyze(x, ANALYSIS_SR, "harvest", with_ap=False)
        rows.append(_envelope_rows(w, _speech_frames(w), _CB_GRID))
    full = np.concatenate(rows)
    full -= full.mean(axis=1, keepdims=True)
    band = np.stack([np.interp(_MATCH_X, np.log(_CB_GRID), r) for r in full])
    _, labels = kmeans2(_detrend_normalise(band), n_codewords, minit="++", seed=seed)
    cents = [full[labels == k].mean(axis=0) for k in range(n_codewords) if np.any(labels == k)]
    return np.stack(cents)


def encode_codebook(cb: np.ndarray) -> str:
    q = np.clip(np.round(cb * 2), -127, 127).astype(np.int8)  # 0.5 dB steps
    return base64.b64encode(zlib.compress(q.tobytes(), 9)).decode("ascii")


# 48 x 80 int8 (0.5 dB), zlib + base64: envelopes of en_US-joe-medium speaking ten
# Harvard sentences (see build_neutral_codebook); log grid 120-7600 Hz.
_NEUTRAL_CODEBOOK = (
    "eNpFV2d3WlmWJUnknDOIDAIUUHAqV9e/nPkya6ZmdVe3y2XZVS7ZlizZlowkBIgMIkcBeiLn3OehWjPn+7vr3X12"
    "unSOQKpQa3R6vV6Hjl5vMJrMFotJqxCy6eRVPGY66LTqSOWufFcsVcpIoz0lsFhEIom0GPZm80b1Lnzu8RQywXDI"
    "8/3kg0ihMdkd+8+eP3/29Mne7o5jy2ZUS/hcnlCmsWw7rDq1ft1q1bEx3ftKtdbu1JBKJZe+qz7cF5LpWCCQDno+"
    "/Xbwuzd48fXw1/9+8zOLK5DI1VqDybK+vm6xmE3mddvmzpPnP/z4008vHBbtmkarM1qtWj4FOx32ut3hYj54uL25"
    "OD39ePgthoRT8Yur//rP3169Pr5ynX87+sQXy1Ra0/qGY+/JU/jBnS27xaBRSgQcBmUVv5iO+t12q4GUS4VcLpfJ"
    "pNOZbKFa72HIXBqdgl+sEJupdDaTjNcK0XAhmr74nUShM9k8gVimUKvX1GqVUqlUa43rm45tm17OZ1CIeMxsMuq1"
    "G/V6vdHqDjE0Hm0+6DWaY3y3ks7lH+7zl9eBdLOaTUUTF2fvyHS2QCxXrmk0mjWVUi6TiEUisUSmUK3pzfZtx5Z5"
    "TQr/SiVTWVw2ddGrVYqpVCyaSBRqg3qhmKs9ILce53UoGY+HPW7nxwOpTC5XKFVqFCd0yQYYo9Gg12lUUiGHTiKg"
    "d+40a0i1UqlUH+rtIY7BWMFhiKR5t9F6QIrllMfpDaUT/kAodP75mIHyZQ3lC3qOyWTQKkVMEoGwSqYxeWKl3mzS"
    "K+BcCpUhkDBXFuN+EynlUrlMsdjrILVmvV7yuZyXvkA8EPZceT68JlFoDBaHxxcIBHwum0mnUWl0BovN5nA4bAaN"
    "QiaTSKuLQaNaLN/fN3vtdh9LoK9iJ/3aYNYuZovtYYu+0qv1MZheD4ia9iwIFCZHIATUhAIel8Ni/HUihyeQKHXw"
    "w1oJj00nYqfjyWw6XZC4KHFG8wUJM+rUOothq3TruQj6Y+FAOOr1HP9KhHvBfkUSiVQCuxAK+DwYvlAsU2pNVqtJ"
    "q5QK2cCM2WyOI1EZNNygUave3ZVro2nnvlR7KNWK/q+BaCGfyATd18ev1wzW7f0XL//2008/vnzxDCWgzaiRi3gc"
    "NocvFLLJeCwMbj4eDidzPEMgEArwzbtcOpvOJPzeK6c3Ef/y4e3R9yriCjg/v/vtzQxDINFhJyhj1EqZiM8B7OCu"
    "Cq3ZDgzksdksGoh4MhgO+/3BaEagitnA4zlmNOpU75OxaH7YCrvOLuMXkWQu9OU1jcnhi6RylVqDMvCR0Ko1rd5k"
    "3XTs7u1umtQyiVSuVMnYhFGjXCyk4+Fg0B/2J+5a9VK51ixXEoHLU5c3lojc+L+dvEH1tqbTL7kCYzZb1q327d2n"
    "z188f7a/ZdYbzKh4yfhxp3aXTcYikWDA53ffhmOJVq81QcrVctL/4fDkizce8B6+/3ywsbm1vbO7/+TZ8xcvXjx/"
    "igp43aRTy0TAZfx8POh1O+1WvVpcijdbrCC1h3qt3uktiLhaPpktp4P+RDx913rIBtKpkPM9iy9RAlRw5q4DPUqv"
    "UcklAh5fDADClbeMcolCpVQZLFIyZtQDFLvdQaNRL8VDnlLZfXV1G8t4/veXnw/Ovp6dnX34/e2Tp8/g1354+fLl"
    "jy9/gAXvbtlQjgg4TCoRD3JYGgGoFJTW7Q8GrXqjjuRui0gPx8I18vl0OJn57o0UioWw23d1+Pm1VotKDXXkddQA"
    "zUYQrlwqEYulcrlcKuSCgjHTIepa7e4QS2USh/VqIZ7MlEeDXDQQrnQ7VbcrmCrfJ0PhwNGn90KJAvzJYrUDjo/j"
    "2NnZcWyYtQqJSMjncWFhMimPvOiBI2Tj8VjEHwreBIPRFDIopzKdZjr89YvTH8vkSjHPxdV7PJHK4gFhFEqlQi4D"
    "jUhkyjVgi33DblIJ4dIEzHw66rbqDwgCl252RjgWawU7mxOo+EGv328hCfdFINXM3wa9vqNPb6jgIgqNAWiCXlav"
    "0+oMZtuSejubFi0qFBa4H4lEpvHVRhVfLCQ2i4nQzfmF0+kNJHLxfPrm6B8/H5x4rm6vvd8+/smTqPQW9Pt9dMDz"
    "97dMSj6NRKZyZDoUBZteKREpdGoRk4ibDPtjoFAlHgu6rt0R79GJOxVxvfnzzJVI3ng+/es/fv0FTBTdBtxvy7Gz"
    "t7e369i0GjUKMY9Fg03MJsNB7zEuS8VCsVgs1zojDIGAw9EEq+MpDjsrZ7JggK5Y6CIQCbgP3zDZXL4QMFNrtFot"
    "CE6Fyk0HC7JaTDqlmEsn4ubT8aDb6fRHCzKLSRg8VO8K1Up3NkDuqnUkHPG4XJFEthiP30ZC3w+4YKXCZWCgoW54"
    "HCOEpt1uNRu0KgmHAhHDovO0djVpMhqAaO/S8XyxWQn4ArFiqZ5rFYN//PrVHQxeHX1+9QqOkqMGoAMFQ24Y0Agx"
    "wfXtVpNOJeUz0YawmM8xeCKdTV+Zdh4qd8V8Jl9pT0blQq1dj7q+nF56gtlQxO/znB2/xuEJhJXVVagP5OWQiKsr"
    "BBwGvWOv0263O51uH4xqOASv7/YGo8l0hsXP+gDrbIyZY/EMBk0oEjNYXDIJT8Bgm1KUzusb22AJT/Z3tzcANqgI"
    "9q0d2PWT/X3wh431NR5hWK/APrKpVDwej/q9sUKrFnaHCrlo9urwyP350hePXX5+8/boAHUo4J4V8Np4HLvdbgPo"
    "1uRCNnUFDXNQW6vZgDCfrFAJfaRUyBeqbcxqv1oftRG/8/zbV6cvkQhG4/6LT38He6axeLBhuQL0IRHyIZPQAbtf"
    "8ty2YdWKAEUikczgiKQC0mQ46g37tU69nE1nK3dgCRnv6Ren2x+NeX3HrylskVIH6kCNQK1SqWHLRrPFtrWzaVSK"
    "hQIuhYDF4xbzxQxHYYLQFqN+s93pD5Ba+b7VreWQaiLi/Pjp7NuJ99J5dvTpADKLxYU0g44ACl4KGNx/WTZ2dzZM"
    "agmPAWGJVoR6s9XujMhUwBK5f2hNp637MtIslmIX575wupBN+H3XH/4hlMhVGj0wxGZfYgc4ok6zYdZA7jIh0Umr"
    "qyQKg81hro6bYNPZ5C2Y/m2qgIw6kOetavj6+Mt5opQD7wm4nO+INLZQrjGi/LXbbFZwBeOalEtdXVklM3hSpVIO"
    "EiHhIPqBLZ0O0GSEmY97nW6lu5gOmslcFHzq9M+LcjF0X4J++oYNsK8ZLLbNLYfDsb29tbVpR0NcwmdRiWjsAgub"
    "dQQkls/nc/lCoVypDeYkPhFP4pAWU+wEypYvEk22MtH0fSB+/RHWirYrcGkjVFSr1fZIHPs6pLqQQyPisJgFcHsw"
    "GE5wZBq+/1DM3MbimWxlOEMKlVqnFPYHbgLxRCp2GwfF/SZXqVTgpFKpdClhjVouZK4uxsPRfAWaEluo0uvVfAaZ"
    "DCrmKbQiMnYymPZGwx6U1nypPRy3A06vx+uOJq+jF66bD2/FEmiAiuUf/l9nA4ZbzHq1hEtD2+kYwqPZqNdqaD3F"
    "0aj4cQtBqo3FSq9+3xyA13hd/kghEwOXdZ6+o0K7gn76/3alAACWEtwBtTnspjW5GKqcQASNRCFgs7ksbLsU9l2f"
    "fz1xXkaSoTjUmFf/88+jM3fQf+X88Jb2yD7Vsj0/Roh4aV8ag2Vz79nz3XUd1BoxXyhXK3mkxWQ0WeDG1fSt13V5"
    "5S+UE9HIje/j2z+Ozj1B9/cv7/6FIYCOIORU6GkyMZpo3KUnisRS0Nv65vbmulYmgA4nkgno816rClSDTv/Q65UT"
    "meIDUinc+s7dN5FA1O3/fvgLWkX/+h6QhEH/77GRa/SQTOj7QafV6g06GYswbLdrpWI+l6kirWY5Xy5V0rehVMx3"
    "fvL1Ohj0XJ38+QpeL469p8/RgrDsB3s7qGcZtSqpgI2+FhZTcLzZHIPF4omEcQM60W0qFk+Vuu1SLl/tlrxnrisw"
    "1Jj/OuC/Oj36J9rW4P0Gpmwyob0exgjshpeCzYQyEBo1hUjAYjFzHJEhUuv0WhGhVUiFr303N4HwbTgeiDpf/3Jw"
    "/B3qhv/bx/eoKxmtG2gp2N7asFmtVvDSvSfPnu5umrUqmVjAYbPYUC/VSiGDiKNQsUgpGb7xu68vXWG/98LjvnKe"
    "Hh4cf/zsdDrPjv/4Qw2L1SzfHgbjX/XPakOzTSXhMsgrGLCWXrfdWDai1gDoN0Xuiul0ujJcVDKZ/H0pXU5GEqUq"
    "xFQ2Gro5gUdUp9cfjqezBQYDyTObTibT6XQy7Nbvqw+dyWIOFJnP+p0edD4CKHqFTqHwWXT1mkXEp4pX6SssJpVJ"
    "p+LYkFqTSfrfOVYdfg=="
)


@lru_cache(maxsize=1)
def _neutral_codebook() -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(_NEUTRAL_CODEBOOK))
    return np.frombuffer(raw, dtype=np.int8).astype(np.float64).reshape(-1, _CB_BINS) / 2


@lru_cache(maxsize=8)
def _warped_codebooks(hi_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Codebook warped by every candidate factor: [n_alpha, K, bins] (bins up to hi_hz)."""
    cb = _neutral_codebook()
    m = _MATCH_GRID <= hi_hz
    logg = np.log(_CB_GRID)
    out = []
    for a in _ALPHAS:
        src = _MATCH_X - math.log(a)
        warped = np.stack([np.interp(src, logg, r) for r in cb])
        out.append(_detrend_normalise_masked(warped, m))
    return np.stack(out), m


def _detrend_normalise_masked(rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
    x = _MATCH_X[mask] - _MATCH_X[mask].mean()
    r = rows[:, mask]
    r = r - r.mean(axis=1, keepdims=True)
    r = r - np.outer(r @ x / (x @ x), x)
    return r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-9)


def _estimate_formant_ratio(w: _World, frames: np.ndarray, orig_sr: int) -> tuple[float, float]:
    if len(frames) == 0:
        return 1.0, 0.0
    if len(frames) > _MAX_MATCH_FRAMES:
        frames = frames[np.linspace(0, len(frames) - 1, _MAX_MATCH_FRAMES).astype(int)]
    hi = min(_MATCH_HI, 0.45 * orig_sr, 0.45 * w.fs)
    books, mask = _warped_codebooks(float(hi))
    rows = _envelope_rows(w, frames, _MATCH_GRID)
    rows = _detrend_normalise_masked(rows, mask)
    # score[a] = mean over frames of the best codeword's cosine
    scores = np.empty(len(_ALPHAS))
    for i, book in enumerate(books):
        scores[i] = (rows @ book.T).max(axis=1).mean()
    i = int(np.argmax(scores))
    log_a = math.log(_ALPHAS[i])
    if 0 < i < len(_ALPHAS) - 1:  # parabolic refinement on the log-alpha grid
        y0, y1, y2 = scores[i - 1], scores[i], scores[i + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            step = math.log(_ALPHAS[1] / _ALPHAS[0])
            log_a += 0.5 * (y0 - y2) / den * step
    return float(math.exp(log_a)), float(scores[i])


# --- resampling, level --------------------------------------------------------------------------------
def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    import soxr

    return soxr.resample(x.astype(np.float64), sr_in, sr_out, quality="HQ")


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
def analyze_voice(audio: np.ndarray, sample_rate: int, f0_method: str = "dio") -> VoiceProfile:
    """Measure a reference clip (mono, any rate; analysed at 16 kHz)."""
    x = _as_mono(audio)
    if sample_rate <= 0:
        raise InvalidInput("sample_rate must be positive", field="sample_rate")
    if len(x) < 0.5 * sample_rate:
        raise InvalidInput("reference audio is shorter than 0.5 s", field="audio")
    edges = _usable_edges(min(sample_rate, ANALYSIS_SR))
    fs = ANALYSIS_SR if sample_rate >= ANALYSIS_SR else sample_rate
    if sample_rate != fs:
        x = _resample(x, sample_rate, fs)
    peak = np.max(np.abs(x))
    if peak < 1e-4:
        raise InvalidInput("reference audio is silent", field="audio")
    x = x / peak * 0.5  # level does not matter to any measure; keeps WORLD in range
    w = _world_analyze(x, fs, f0_method, with_ap=False)
    voiced = w.f0 > 0
    if voiced.sum() < 20:  # < 0.1 s of voicing
        raise InvalidInput("no voiced speech found in the reference audio", field="audio")
    med, spread = _log_f0_stats(w.f0)
    frames = _speech_frames(w)
    ratio, match = _estimate_formant_ratio(w, frames, sample_rate)
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
    f0_method: str = "dio",
) -> np.ndarray:
    """Re-shape ``audio`` (the default voice) toward ``target``; same length, float32.

    ``source`` is the long-term profile of the voice being adapted (e.g. the default voice
    measured once over several sentences). With it, every sentence gets the same pitch
    mapping and warp; without it, this utterance is measured and used as its own source.
    ``strength`` in [0, 1] interpolates every change (0: only the level/limiter stage).
    """
    x = _as_mono(audio)
    if sample_rate <= 0:
        raise InvalidInput("sample_rate must be positive", field="sample_rate")
    if not 0.0 <= strength <= 1.0:
        raise InvalidInput("strength must be within [0, 1]", field="strength")
    n = len(x)
    if n < int(0.05 * sample_rate) or np.max(np.abs(x)) < 1e-5:
        return _finish(x, sample_rate, None, None)
    in_rms = _active_rms(x, sample_rate)
    w = _world_analyze(x, sample_rate, f0_method)
    voiced = w.f0 > 0

    # pitch: log-F0 median and spread
    if voiced.sum() >= 5:
        if source is not None:
            src_med, src_sd = math.log(source.f0_median_hz), source.f0_log_std
        else:
            src_med, src_sd = _log_f0_stats(w.f0)
        tgt_med, tgt_sd = math.log(target.f0_median_hz), target.f0_log_std
        new_med = src_med + strength * (tgt_med - src_med)
        spread = (tgt_sd / src_sd) if src_sd > 1e-3 and tgt_sd > 1e-3 else 1.0
        spread = float(np.clip(spread, 0.5, 2.0)) ** strength
        lf = np.log(w.f0[voiced])
        w.f0 = w.f0.copy()
        w.f0[voiced] = np.clip(np.exp(new_med + (lf - src_med) * spread), 40.0, 1100.0)

    # vocal tract length: warp envelope and aperiodicity
    if source is not None:
        src_ratio = source.formant_ratio
    else:
        src_ratio = _source_formant_ratio(x, sample_rate)
    alpha = float(np.clip((target.formant_ratio / src_ratio) ** strength, WARP_MIN, WARP_MAX))
    if abs(alpha - 1.0) > 1e-3:
        w.sp = _warp_envelope(w.sp, alpha)
        w.ap = np.clip(_warp_envelope(w.ap, alpha, log_domain=False), 0.0, 1.0)

    # spectral balance: EQ from band differences, measured after the warp
    edges = [e for e in target.band_edges_hz if e <= 0.45 * sample_rate]
    k = len(edges) - 1
    frames = _speech_frames(w)
    if k >= 2 and len(frames) > 0 and strength > 0:
        current = _band_levels(w, frames, edges)
        tgt = np.asarray(target.spectral_tilt[:k], dtype=np.float64)
        tgt = tgt - tgt.mean()
        eq_db = strength * _eq_curve_db(w.freqs, edges, tgt - current)
        w.sp = w.sp * (10 ** (eq_db / 10))[None, :]

    y = _world_synth(w, n)
    return _finish(y, sample_rate, target_rms_dbfs, in_rms)


def _source_formant_ratio(x: np.ndarray, sample_rate: int) -> float:
    """formant_ratio of the audio being adapted, measured like analyze_voice does."""
    fs = ANALYSIS_SR if sample_rate >= ANALYSIS_SR else sample_rate
    x16 = _resample(x, sample_rate, fs) if sample_rate != fs else x
    w16 = _world_analyze(x16, fs, "dio", with_ap=False)
    ratio, match = _estimate_formant_ratio(w16, _speech_frames(w16), sample_rate)
    return ratio if match > 0 else 1.0


def shift_pitch(audio: np.ndarray, sample_rate: int, semitones: float) -> np.ndarray:
    """Every voiced F0 value times 2 ** (semitones / 12); envelope, timing and length kept,
    loudness kept (active RMS), peaks limited to 0.99. ``semitones == 0`` returns ``audio``."""
    if semitones == 0:
        return audio
    if not math.isfinite(semitones) or abs(semitones) > 24:
        raise InvalidInput("pitch must be within +-24 semitones", field="pitch")
    x = _as_mono(audio)
    if len(x) < int(0.05 * sample_rate) or np.max(np.abs(x)) < 1e-5:
        return np.asarray(audio, dtype=np.float32)
    in_rms = _active_rms(x, sample_rate)
    w = _world_analyze(x, sample_rate, "dio")
    w.f0 = w.f0 * (2.0 ** (semitones / 12.0))
    y = _world_synth(w, len(x))
    return _finish(y, sample_rate, None, in_rms)
