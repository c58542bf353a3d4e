"""ONNX Runtime's float32 arithmetic for the few ops where Kokoro is sensitive to the last bit.

Kokoro's harmonic source feeds an STFT whose phases enter the generator. Where the source is
constant (unvoiced stretches: the sines are gated off, leaving tanh(bias)), every STFT bin but
0 and 1 is zero up to rounding noise, so its *phase* is that noise: a value in [-pi, pi]
decided by the last bits of the STFT's arithmetic. Replacing ONNX Runtime's algorithm by any
other FFT changes those phases, and measurably the audio (a 1e-7 relative change of the source
moves output samples by up to 0.05). To behave like the exported model, the torch code replays
ONNX Runtime's own float32 algorithms for that path, each checked bit for bit against
onnxruntime by the tests:

- ``stft``: ORT's STFT for a 20-point frame, i.e. Bluestein's chirp-z transform over 64-point
  radix-2 FFTs (twiddles from libm ``cosf``/``sinf``, the forward twiddles reused for the inverse
  FFT, whose output is then read backwards), complex products as (ac - bd, ad + bc);
- ``mlas_tanh``: MLAS's rational tanh (Eigen's coefficients) with fused multiply-adds, as its
  FMA3 kernel computes it (emulated in float64: exact products, then one float32 rounding per op);
- ``resize_linear_3d``: ORT's 'linear' Resize of a 3-D tensor (its trilinear kernel);
- ``sequential_cumsum``: CumSum accumulated in float32 one step at a time.

These are pure functions of their inputs; the rest of the model uses ordinary torch kernels.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

_F = np.float32

# ---------------------------------------------------------------------------------- scalar helpers


def _libm_cexp() -> callable:
    """(cosf(a), sinf(a)) from the C library (what ORT's std::cos/std::sin on float call)."""
    name = ctypes.util.find_library("m")
    try:
        libm = ctypes.CDLL(name) if name else None
        cosf, sinf = libm.cosf, libm.sinf  # type: ignore[union-attr]
        for fn in (cosf, sinf):
            fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
        return lambda a: (_F(cosf(float(a))), _F(sinf(float(a))))
    except (OSError, AttributeError):  # no C math library: correctly rounded values instead
        return lambda a: (_F(math.cos(float(a))), _F(math.sin(float(a))))


def _bitrev(x: int, bits: int) -> int:
    r = 0
    for _ in range(bits):
        r, x = (r << 1) | (x & 1), x >> 1
    return r


def _cmul_np(ar, ai, br, bi):
    return (ar * br - ai * bi).astype(_F), (ar * bi + ai * br).astype(_F)


# ---------------------------------------------------------------------------------- Bluestein STFT


class _Bluestein:
    """Constants of ORT's Bluestein transform of length n (padded to m = next power of 2 >= 2n - 1)."""

    def __init__(self, n: int) -> None:
        cexp = _libm_cexp()
        m = 1
        while m < 2 * n - 1:
            m <<= 1
        bits = m.bit_length() - 1
        pi = _F(math.pi)
        av = _F(_F(-1.0) * _F(2) * pi) / _F(m)  # angular velocity of the forward FFT
        v = np.zeros((m, 2), _F)
        for i in range(m):
            v[_bitrev(i, bits)] = cexp(_F(_F(i) * av))
        chirp = np.array([cexp(_F(_F(_F(_F(-1.0) * pi) * _F(k)) * _F(k)) / _F(n)) for k in range(n)], _F)
        self.n, self.m, self.bits, self.v, self.chirp = n, m, bits, v, chirp
        b = np.zeros((1, m, 2), _F)
        b[0, :n, 0], b[0, :n, 1] = chirp[:, 0], -chirp[:, 1]
        for k in range(m - n + 1, m):
            b[0, k] = b[0, m - k]
        br, bi = self._fft_np(b[..., 0], b[..., 1])
        self.b_fft = np.stack([br[0], bi[0]])
        self.order = np.array([_bitrev(i, bits) for i in range(m)])
        # Per stage: twiddles of the first / second output of each butterfly (index k < half).
        self.stages = []
        size, level = 2, 0
        while size <= m:
            half, level = size // 2, level + 1
            first = v[[_bitrev(k, level) for k in range(half)]]
            second = v[[_bitrev(half + k, level) for k in range(half)]]
            self.stages.append((size, first, second))
            size *= 2

    def _fft_np(self, re: np.ndarray, im: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m, bits, v = self.m, self.bits, self.v
        order = [_bitrev(i, bits) for i in range(m)]
        re, im = re[:, order].copy(), im[:, order].copy()
        size, level = 2, 0
        while size <= m:
            half, level = size // 2, level + 1
            for k in range(half):
                f, s = v[_bitrev(k, level)], v[_bitrev(half + k, level)]
                ev = np.arange(k, m, size)
                od = ev + half
                er, ei, o_r, oi = re[:, ev], im[:, ev], re[:, od], im[:, od]
                pr, pi_ = _cmul_np(f[0], f[1], o_r, oi)
                qr, qi = _cmul_np(s[0], s[1], o_r, oi)
                re[:, ev], im[:, ev] = er + pr, ei + pi_
                re[:, od], im[:, od] = er + qr, ei + qi
            size *= 2
        return re, im

    def tensors(self, device: torch.device) -> dict[str, Tensor]:
        return _bluestein_tensors(self.n, device)

    def _tensors(self, device: torch.device) -> dict[str, Tensor]:
        t = {
            "chirp": torch.from_numpy(self.chirp.T.copy()),  # [2, n]
            "b_fft": torch.from_numpy(self.b_fft.copy()),  # [2, m]
            "order": torch.from_numpy(self.order),
        }
        for i, (_, first, second) in enumerate(self.stages):
            t[f"f{i}"] = torch.from_numpy(first.T.copy())  # [2, half]
            t[f"s{i}"] = torch.from_numpy(second.T.copy())
        return {k: v.to(device) for k, v in t.items()}


@lru_cache(maxsize=4)
def _bluestein(n: int) -> _Bluestein:
    return _Bluestein(n)


@lru_cache(maxsize=8)
def _bluestein_tensors(n: int, device: torch.device) -> dict[str, Tensor]:
    return _bluestein(n)._tensors(device)


def _cmul(ar: Tensor, ai: Tensor, br: Tensor, bi: Tensor) -> tuple[Tensor, Tensor]:
    return ar * br - ai * bi, ar * bi + ai * br


def _fft(re: Tensor, im: Tensor, bs: _Bluestein, t: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """ORT's radix-2 FFT on [F, m] rows (forward twiddles; unscaled)."""
    re, im = re.index_select(1, t["order"]), im.index_select(1, t["order"])
    rows = re.shape[0]
    for i, (size, _, _) in enumerate(bs.stages):
        half = size // 2
        shape = (rows, bs.m // size, 2, half)
        r4, i4 = re.reshape(shape), im.reshape(shape)
        er, ei, o_r, oi = r4[:, :, 0], i4[:, :, 0], r4[:, :, 1], i4[:, :, 1]
        f, s = t[f"f{i}"], t[f"s{i}"]
        pr, pi_ = _cmul(f[0], f[1], o_r, oi)
        qr, qi = _cmul(s[0], s[1], o_r, oi)
        re = torch.stack([er + pr, er + qr], dim=2).reshape(rows, bs.m)
        im = torch.stack([ei + pi_, ei + qi], dim=2).reshape(rows, bs.m)
    return re, im


def stft(signal: Tensor, window: Tensor, hop: int, block: int = 512) -> tuple[Tensor, Tensor]:
    """ORT's onesided STFT of a 1-D float32 signal: (real, imag), each [n_fft // 2 + 1, frames].

    Frames are transformed ``block`` at a time: each op then works on 32K floats that stay in
    cache (and below torch's parallelization grain: thread hand-offs cost more than they gain on
    ops this small), ~1.5x faster than whole-signal ops on one thread and far steadier on two.
    """
    n = window.shape[0]
    total = (signal.shape[0] - n) // hop + 1
    if total > block:
        parts = [_stft(signal[start * hop: (min(total, start + block) - 1) * hop + n], window, hop)
                 for start in range(0, total, block)]
        return torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)
    return _stft(signal, window, hop)


def _stft(signal: Tensor, window: Tensor, hop: int) -> tuple[Tensor, Tensor]:
    n = window.shape[0]
    bs = _bluestein(n)
    t = bs.tensors(signal.device)
    frames = signal.float().unfold(0, n, hop) * window.float()  # [F, n]
    rows = frames.shape[0]
    ar = frames.new_zeros(rows, bs.m)
    ai = frames.new_zeros(rows, bs.m)
    chirp = t["chirp"]
    # (x w + 0i)(c + si) = (x w c - 0 s, x w s + 0 c)
    ar[:, :n], ai[:, :n] = _cmul(frames, torch.zeros_like(frames), chirp[0], chirp[1])
    ar, ai = _fft(ar, ai, bs, t)
    ar, ai = _cmul(ar, ai, t["b_fft"][0], t["b_fft"][1])
    ar, ai = _fft(ar, ai, bs, t)  # the "inverse", with forward twiddles: output reversed
    ar, ai = ar / float(bs.m), ai / float(bs.m)
    bins = n // 2 + 1
    idx = torch.tensor([0] + [bs.m - k for k in range(1, bins)], device=signal.device)
    cr, ci = ar.index_select(1, idx), ai.index_select(1, idx)
    re, im = _cmul(cr, ci, chirp[0, :bins], chirp[1, :bins])
    return re.transpose(0, 1), im.transpose(0, 1)


# ---------------------------------------------------------------------------------- MLAS tanh

_ALPHA = [float(_F(a)) for a in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                                  5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                                  4.89352455891786e-03)]
_BETA = [float(_F(b)) for b in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                                4.89352518554385e-03)]


def _fma32(a: Tensor, b: Tensor | float, c: float) -> Tensor:
    """float32 fused multiply-add: the float64 product of two floats is exact; round once."""
    return (a.double() * (b.double() if isinstance(b, Tensor) else b) + c).float()


def mlas_tanh(x: Tensor) -> Tensor:
    """ONNX Runtime's float32 Tanh on x86-64 with FMA (MLAS's FMA3 kernel), bit for bit."""
    x = x.float().clamp(-9.0, 9.0)
    x2 = x * x
    p = _fma32(x2, _ALPHA[0], _ALPHA[1])
    for a in _ALPHA[2:]:
        p = _fma32(p, x2, a)
    p = p * x
    q = _fma32(x2, _BETA[0], _BETA[1])
    for b in _BETA[2:]:
        q = _fma32(q, x2, b)
    return p / q


# ---------------------------------------------------------------------------------- Resize, CumSum


@lru_cache(maxsize=128)
def resize_weights(n_in: int, n_out: int, scale: float) -> tuple[np.ndarray, ...]:
    """ORT's 'linear'/half_pixel source indices (i1, i2) and weights (d1, d2), float32 arithmetic."""
    x = np.arange(n_out, dtype=_F)
    xo = ((x + _F(0.5)) / _F(scale) - _F(0.5)).astype(_F)
    xo = np.maximum(_F(0.0), np.minimum(xo, _F(n_in - 1)))
    i1 = np.minimum(xo.astype(np.int64), n_in - 1)
    i2 = np.minimum(i1 + 1, n_in - 1)
    d1 = np.abs(xo - i1.astype(_F)).astype(_F)
    d2 = np.abs(xo - i2.astype(_F)).astype(_F)
    same = i1 == i2
    d1[same] = 0.5
    d2[same] = 0.5
    return i1, i2, d1, d2


def trilinear_sum(a: Tensor, b: Tensor, d1: Tensor, d2: Tensor) -> Tensor:
    """ORT's 3-D 'linear' Resize output for rows [H, n] of left/right neighbours a, b.

    ORT treats a [1, H, W] input as depth 1 x height H x width W: the depth weights are 0.5 and
    0.5 on the same value; the height weights are 1 and 0, except on the last row (0.5 and 0.5 on
    the same row). Its eight-term sum is reproduced in its order (zero-weight terms add +-0).
    """
    out = torch.empty_like(a)
    h, g = (d2 * 0.5) * a[:-1], (d1 * 0.5) * b[:-1]
    out[:-1] = ((h + g) + h) + g
    h, g = (d2 * 0.25) * a[-1], (d1 * 0.25) * b[-1]
    s = h + g
    for _ in range(3):
        s = (s + h) + g
    out[-1] = s
    return out


def sequential_cumsum(x: Tensor) -> Tensor:
    """Cumulative sum along the last axis, accumulated in float32 one step at a time (as ORT)."""
    out = np.cumsum(x.detach().cpu().numpy().astype(_F), axis=-1, dtype=_F)
    return torch.from_numpy(out).to(x.device)
