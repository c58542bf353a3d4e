"""The spectral-envelope codebook behind ``VoiceProfile.formant_ratio``.

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

Kept apart from :mod:`tts_engine.audio.adapt` because most of it is the tabulated codebook
and the offline tooling that rebuilds it, which adaptation itself never reads.
"""

from __future__ import annotations

import base64
import math
import zlib
from functools import lru_cache

import numpy as np

from tts_engine.audio.world import (
    ANALYSIS_SR,
    World,
    as_mono,
    resample,
    speech_frames,
    world_analyze,
)

__all__ = [
    "WARP_MAX",
    "WARP_MIN",
    "build_neutral_codebook",
    "encode_codebook",
    "estimate_formant_ratio",
]

# the warp factors searched; adapt_to_profile clamps the warp it applies to the same range
WARP_MIN, WARP_MAX = 0.7, 1.5
_ALPHAS = np.exp(np.linspace(math.log(WARP_MIN), math.log(WARP_MAX), 81))
# codebook grid (log-spaced) and the band the matching looks at
_CB_LO, _CB_HI, _CB_BINS = 120.0, 7600.0, 80
_CB_GRID = np.geomspace(_CB_LO, _CB_HI, _CB_BINS)
_MATCH_LO, _MATCH_HI, _MATCH_BINS = 200.0, 5000.0, 64
_MATCH_GRID = np.geomspace(_MATCH_LO, _MATCH_HI, _MATCH_BINS)
_MATCH_X = np.log(_MATCH_GRID)
_MAX_MATCH_FRAMES = 1500


def _envelope_rows(w: World, frames: np.ndarray, grid: np.ndarray) -> np.ndarray:
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
        x = as_mono(clip)
        if sample_rate != ANALYSIS_SR:
            x = resample(x, sample_rate, ANALYSIS_SR)
        w = world_analyze(x, ANALYSIS_SR, "harvest", with_ap=False)
        rows.append(_envelope_rows(w, speech_frames(w), _CB_GRID))
    full = np.concatenate(rows)
    full -= full.mean(axis=1, keepdims=True)
    band = np.stack([np.interp(_MATCH_X, np.log(_CB_GRID), r) for r in full])
    all_bins = np.ones(_MATCH_BINS, dtype=bool)
    _, labels = kmeans2(_detrend_normalise_masked(band, all_bins), n_codewords, minit="++", seed=seed)
    cents = [full[labels == k].mean(axis=0) for k in range(n_codewords) if np.any(labels == k)]
    return np.stack(cents)


def encode_codebook(cb: np.ndarray) -> str:
    """The text form of ``_NEUTRAL_CODEBOOK`` (so a rebuilt codebook can be pasted in)."""
    q = np.clip(np.round(cb * 2), -127, 127).astype(np.int8)  # 0.5 dB steps
    return base64.b64encode(zlib.compress(q.tobytes(), 9)).decode("ascii")


# 48 x 80 int8 (0.5 dB), zlib + base64: build_neutral_codebook(clips, 22050) over
# en_US-joe-medium (onnxruntime, scales 0.667 / 1.0 / 0.8) saying Harvard sentences list 1
# ("The birch canoe slid on the smooth planks." ... "A large size in stockings is hard to
# sell.", 22 s); log-frequency grid 120-7600 Hz.
_NEUTRAL_CODEBOOK = (
    "eNpFV+dvmwkZ99577z0T23Fm06Y3ChJf+AJCwN/GFyTuEAfHNV13LWnTXLMTx/GK94733nvyvOkhHimxlciPn/Ub"
    "L5XJE8lUGh2ERq1UyKRisUgkFkvlKq1hdW3dvqIWclk0CpFI4/GZqG6zlE0looFIOFUatvO5XK1aDdxeuqKpVDzk"
    "cV1+3G93uv3BcDSeTGfz+WIxn89mD2+Wi9kU/raYj4fj2WIxG08Xs9GgP1ygl5Nptz8eT3FkNJbEEovFCoVEKFDR"
    "WHgSBj/AkxkcgUSuVKkfQqPVGUyrVptt1agUsKhEPBa9mI567XqlVK6WS7VafTBGk6h0EplMwU4mk1mrXfZfeAPF"
    "tDvo9nw6eoklUplcoVSh0mi1GpVCLpVCqzqzdc1uNWkkXDqZgEXNx/1Oq9mAaPfGaBqLOJ8OpmjsqFGv1Kql4MWV"
    "P17PR4K+4OnHFzQWVyhRaAymFYtldcVk1OugQIt9c+fx3tO9HZteKZdJRGKpTKGUSzhkAp1JHBWiruvTj4cfTi7d"
    "SX8w6L39/tu/7x+cuX3emw/viBQGhy+WKpQqlRKqE4uEQpFYBl+AlGgzKQVMClQ4HQ26nW4XqY5JmPSarc5oNm/V"
    "KvVmPh92nLq9qUww7HNd/+d7FBqDxRMIRBIEMq3lHPYwmU4n40EPEgyQTc0X006tNZ5NZstBA8XF94eTJWo8maB7"
    "E8KSTGeQpEKhVEagUkmkISxDqdGbzCsrK2aT0WAwGKFzKG19fW3VqFGIeSwGk8MTingUzKRdzudS8XDIHwiGkqVq"
    "p1jIt6uF2MV/jtyRRDLgvDk6fM6Xaky27cdffPXVV093t+yrRjhDNfQuE/E4HC6bshzPsDjMYjRG40hc2rhazJbK"
    "xUJjiJk02pNhruA6/ei4/NmZvnPeRK4/vPkGZr+1+/TLr589+/rLPUhoXTWbDDqVlM8k4zGoab/VbHc6rWoxly2U"
    "q9Vard2ptSvFarNPwDTzmex9NBwPRFPVbiMZiIdvzl6yuQKRVKHWGcwrq6srZugZaRj6tRkVfDqZiMcsYRm9DpK3"
    "O8Qw2dhOq5wr5mt9dK2Ub3VDPofjJhTLJeOpQODy4sUCS6SxeAKRWCIRiwR8LofFoNPoDCZ8j0ShNVnWtzYMEj6f"
    "y+YIZFo1n0ZGYwiYebdRSAQiyWI1n0+GQydH78/v/H7v7e3H541mG7aIAA5iPBoOBn3A33gyA8xBYUNY7hK1nMFF"
    "D8aj6XyOXmCp6ElvOMdjCHQUS6HXyWQqnpgn5dBoJPps1IdUAF34EAqNRqGWywUgeDqFn8l42Edyj0bwOkBeR5AQ"
    "ED4ZzZbT6RS1nGPRGAqOzBaI9SaNXMDi8agYvlAC+DKaAbNr9ofY2Hr05Mtnv3r29ReP1lf1Wo3OZLOvymkoSFsr"
    "FfPlbr9XTYZPz48PnYGQJxW8OPzrX77/7vDCeX588HqfzuZDQo1Or9frtBq4FJVaozOu2gAbKjGPzaTBSgDB0AIK"
    "S+HI1Wq5iNCr5jOxcDKRKgJj+dxnP/3ovPG7XbfOq3fvaUwEvyqt3mA0QDEAOoVSrTdb7cAHWrmQQyeiga1gtOM5"
    "hsxionutcjGfKRbq40G9UGk1IxGHwxmIp+PhQNDjPHvxQH5jBGEI780Q9lvMp2NkIQ/IgyGOEABOYIT9wXyGJeLR"
    "qOkYt1jgiZjRAouiU6gCkUqtUMk5TCp+jtQnVWoN5lWEXgxaNRCKVCqTK7VG68bO491Nq1GvUcrVBoOEMAFSaCL3"
    "UCvHfS6XO5aphMOum7MfXrw9cYS85yevXvwLsqn0ZtvGzu6TvSe7O5t2i1mvlov5bDoJh5pPhr1Ou1mvFHP36ft0"
    "KpVOpTP5anOMo7DpDDIOhSfU4+lUJp3q5yPRcixx9YZCZ3H5IolcoUJQC/ohAQaXyAAxZuvG9s6WzaB64DKZgL7s"
    "VsuFdCwYCPrC0XShVq1Ua/VatZD2nly6IomY9/b44ysAm0Zvtqytb25t7+zsbG9tAK9oFSIug4xHwyLgSjqtRhU2"
    "mc1kc9lsqdEeoSlUIl1AQS2xxHk5XfHfXnnSEedd7M5z9PyzkpktNvvGxsa6fc1mhXfbj/e++OLpk50Nuw3CrOIR"
    "pt1GtZRPx6ORaDDoC+Sa3YwvlGqmoyXPweHBj6dnjoD34qfXH14jvaqRe7aACFmRsCG1btpXtDIBl0kjEXA4LBZP"
    "pLG5NFS/VswkIpFwKBHLN0eNXKndzTpdN+fX0WwkBBf48fAfJAqdyeGLEIFQIoQvEQkFAoFQCDOEFSMKvGYxqmUy"
    "tU7Fwc0GLSCVTCKZKTR6zXK5Vq5mU0m/8+TszO33nV19evNPmVq/srb1aO/p04f1rsOntQqJWK6zbD56/AQI0WZZ"
    "0fDw40YmksjlipUirDoSLTQG3didyxfzN4MXr16+uQoWPWdH331z8COUptQYVqxr60jA/JB2t3efPN62m9QysVAo"
    "4HHYHC5PrNZLqFgsplfJJ4OeYDBw5w763C439O779MP+0fnp+cezd8//tvv02W9++7s//OnPf/7j73/76yd2o0om"
    "lcFFWiwmFRc/gfPrjRdYYNX5dDgDiKXiUX/4LhkG1g8nYv3QhevU+enqxO/zXDhujl+AfqhNtq3dvb29J48fwbls"
    "rlsNSiGLQiJSOGKFXMRj0ymwEzQaT6JRqTwhl0ceFFO5YCaZjUauTpzR2MXbg/eO+7w7cHzw8vm/eNCv1rgCV7K+"
    "gVzMOrxsAkr0cgGbhQSIm0Quoiz67UY5HYvFA/6g1xO+iyaqw3y6NGtHY47ru2Q2fR+NehzX78Bc6Y2gkLY1CBge"
    "KMfm1tb29vam3Wo2aIG+9Ea9jI0f1ZHFRiJBj+fmxuFxB2KNQatTLVcyoesPn06d4VjIeXh4/INYpkTwAUf8GR/b"
    "W1ubGxt2i1El5jIQa7BcLoHFQddnKAx6OazlU7FoMlNqzUa1SrvbjZ5cHV/c+EOxQCQeOn/zD6FMbbCsAyCQAe4+"
    "4M2skfKYDCZXql/b2rCYzFab1Syno0bter3Tbzcb1cJ9oZhNh30hl8sVC3nef/fyp6vQ7cWHF9/u/xUYF1gZLlkm"
    "Q0ybRiVmEeaT8XSJo9BoDIFCZ9RJGHQqlUph8LU6IZmAwuNxhGUvCb6yuJi0GmHX7Yfzn6+CrqjT6Tx51WyDR0EE"
    "aYHQKDjGXq/X/+wwgUu7rXqt1e+B5+y2ms1mvdXrDlFoFnKTUrNMpFSqRQKGkMETCBR8DgOHmdcJQFiwQZlcASVK"
    "xAjYAG7g0EB8rfa1FY2Ez6IiHnA2X+JoTAZ+CHsulcvdwahZLVTqxXLad+z2pxORqOvq8v2/aWwBHIzeCOqhA/WQ"
    "y+WgHxqdAU5ofWvTZlRJBGwyDosj0LhCHh07HXXbk+W4m4+lMvelTDoZLsRCr759+/Kd03l9fry/D94A3CJUB2mQ"
    "tHq1lEcjoJcoDIEKThiu3ayWithUKo0jEbNpeOQOC/lqtdoYN0oNgE/S5XC4nK6UN3R7c3v0nP/Zvfxi2MC9GE0P"
    "TkavACdJApwBpSJOsAu2fYLFzdrV/H0ikYqnO8NCIhZNl1uVRCpf6jULjUw0cnfNA/5TggtH9BIEU62AIQJVqTUa"
    "FQI2GhE1GQ767VoZyL3R7g6XFBZ1Oei2h6hZu5grVMr5VtbrjiZS0Xg6cvfpgMGBC4SDhiOzrJphimDvbSAcO9ub"
    "a2atTMhhsxhUEpFIpHAVOo1MKiB0C3Gf4wLC5U1G4cEj8PM33+wfXl9Hbm7O3r4DHXoozmhCmkUkXQO1IX/SaxTI"
    "bolYxLAN+mCeUSQacd6tFbPJdDzfbd1HQ6FCs513uzyxSikZCzsvjt6g8BQWOA7IoVaBHRfyeVwej8eHmxFLlTqz"
    "bX3dYlBJeCwalcGX8MnzfhNazBXL3V49m7ivV+v3YZ/z4sbn9fou3eevv6Uw+VIVwuvALWsPPRvUEg4VHDr8R6KQ"
    "ghBTCej5sNNqt1qwlXZnBMYB/AwaP+o1qrl4Pnn77tSTT/nu4+dHR6/hRj5rEagRPIH8EismnVLMBUlHzyewXXCn"
    "dTC79cYQRyZOG/lMPpVrD4uxWCpbqBeCd9FktQIPcL7r4/fI7f7i6BG9tJohEXh6BjzmSGVSEY9JJWJAhodwL8MF"
    "mUlb9BuVVCKTq09G6YA3VSlnwmeecKpYC8f93rODHxF8KCCn4X/4AF4AswAcZgNBerxt1aukQrD6fIlaJ+cCKzAx"
    "g1IocHt2/PO5wx8LRyOuq5d//+HTlTfoufr0dh+e3xhsmL8QQvB///xAy+AcjGazRsx58ArgYdEEKodFxswnyyVm"
    "2gWqgF/5FDg/b8jn8nguLw/2/wve21xk"
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
    """Keep the ``mask`` bins, remove a straight line (dB over log f) from each row, and
    scale rows to unit norm (a cosine then compares envelope *shapes*, not tilt or level)."""
    x = _MATCH_X[mask] - _MATCH_X[mask].mean()
    r = rows[:, mask]
    r = r - r.mean(axis=1, keepdims=True)
    r = r - np.outer(r @ x / (x @ x), x)
    return r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-9)


def estimate_formant_ratio(w: World, frames: np.ndarray, orig_sr: int) -> tuple[float, float]:
    """(formant_ratio, mean best cosine) of ``frames`` of ``w``; (1.0, 0.0) with no frames.

    ``orig_sr`` is the clip's rate before any resampling: bands it never held are left out."""
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
