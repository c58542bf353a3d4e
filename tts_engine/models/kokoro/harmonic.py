"""iSTFTNet's harmonic-plus-noise source and the STFTs around the generator, as the export has them.

**Source** (``SourceModuleHnNSF``): the F0 curve (one value per 300 samples) drives 9 harmonics,
merged by a Linear(9, 1) and a tanh. The export removed all randomness (no initial phase noise,
no additive noise), so the source is a deterministic function of F0. Its phase is a running sum
over the *whole utterance*, computed in the graph's float32 arithmetic step by step (see
``ort_numerics``), since that phase (thousands of radians after a few seconds) amplifies rounding:

    rad   = frac(f0 * h / 24000)                      per sample (h = 1..9)
    rad_d = Resize(rad, 1/300, linear, half_pixel)     back to one value per 300 samples
    phase = CumSum(rad_d) * 2 * pi * 300               float32, sequential
    phase = Resize(phase, 300, linear, half_pixel)
    har   = tanh(l_linear(0.1 * sin(phase) * [f0 > 10]))

**Source spectrum**: reflect-pad 10, STFT (n_fft 20, hop 5, periodic Hann), magnitude and the
graph's ``atan(im / re)`` +- pi phase (0/0, where the graph would give NaN, maps to 0).

**Inverse STFT**: ``conv_transpose1d`` with the exported 22 x 20 inverse basis, hop 5. The export
divides only the first 20 samples by ``window_sum`` (a constant traced for a one-frame input),
then scales by n_fft / hop = 4 and trims 10 samples at each end. Reproduced as is.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import ort_numerics as ortn

SAMPLE_RATE = 24000
UPSAMPLE = 300  # samples per F0 value
HARMONICS = 9
SINE_AMP = 0.1
VOICED_THRESHOLD = 10.0
N_FFT = 20
HOP = 5
_DOWN_SCALE = float(np.float32(0.0033333334140479565))  # the graph's float32 "1/300"
_PI32 = float(np.float32(math.pi))
_TINY = float(np.finfo(np.float32).tiny)


def _interp(x: Tensor, index1: np.ndarray, index2: np.ndarray, d1: np.ndarray, d2: np.ndarray) -> Tensor:
    dev = x.device

    def t(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a).to(dev)

    return ortn.trilinear_sum(x[:, t(index1)], x[:, t(index2)], t(d1), t(d2))


class HarmonicSource(nn.Module):
    """F0 (one value per 300 samples) -> excitation waveform, one utterance at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.l_linear = nn.Linear(HARMONICS, 1)
        self.register_buffer("harmonics", torch.arange(1, HARMONICS + 1, dtype=torch.float32)[:, None],
                             persistent=False)

    def phase(self, f0: Tensor) -> Tensor:
        """f0 [T] -> per-sample phase [9, 300 T], float32 as in the graph."""
        t = f0.shape[-1]
        n = t * UPSAMPLE
        rad = (f0.float()[None, :] * self.harmonics) / float(SAMPLE_RATE)  # constant within a frame
        rad = rad - torch.floor(rad)
        i1, i2, d1, d2 = ortn.resize_weights(n, t, _DOWN_SCALE)  # sample positions -> their frames
        rad_d = _interp(rad, i1 // UPSAMPLE, i2 // UPSAMPLE, d1, d2)
        phase = ortn.sequential_cumsum(rad_d) * 2.0 * _PI32 * float(UPSAMPLE)
        return _interp(phase, *ortn.resize_weights(t, n, float(UPSAMPLE)))

    def forward(self, f0: Tensor) -> Tensor:
        """f0 [T] -> excitation [300 T]."""
        voiced = (f0.float() > VOICED_THRESHOLD).float().repeat_interleave(UPSAMPLE)
        sines = torch.sin(self.phase(f0)) * SINE_AMP * voiced  # [9, N]
        return ortn.mlas_tanh(self.l_linear(sines.transpose(0, 1)).squeeze(-1))


class SourceSTFT(nn.Module):
    """Excitation [N] -> [22, N / 5 + 1]: 11 STFT magnitudes, then 11 phases.

    The STFT is ONNX Runtime's own algorithm (``ort_numerics.stft``): the DC and Nyquist bins'
    imaginary parts are zero up to rounding, so wherever their real part is negative the phase is
    +pi or -pi by the sign of that rounding noise, and the generator hears the difference (with
    a plain DFT instead, the audio moves ~2.5 dB log-mel away from ONNX Runtime's; with this,
    ~0.15 dB).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.ones(N_FFT))  # loaded from the graph (periodic Hann)

    def forward(self, x: Tensor) -> Tensor:
        pad = N_FFT // 2
        x = F.pad(x.float()[None, None], (pad, pad), mode="reflect")[0, 0]
        re, im = ortn.stft(x, self.window, HOP)
        magnitude = torch.sqrt(re * re + im * im)
        atan = torch.atan(im / re)
        atan = torch.where(torch.isnan(atan), torch.zeros_like(atan), atan)
        phase = torch.where(re < 0, torch.where(im > 0, atan + _PI32, atan - _PI32), atan)
        return torch.cat([magnitude, phase])


class InverseSTFT(nn.Module):
    """(magnitude, phase) [B, 11, frames] -> waveform [B, 5 (frames - 1)], as the export does it."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("inverse_basis", torch.zeros(2 * (N_FFT // 2 + 1), 1, N_FFT))
        self.register_buffer("window_sum", torch.ones(N_FFT))

    def forward(self, magnitude: Tensor, phase: Tensor, frame_mask: Tensor | None = None,
                at_start: bool = True) -> Tensor:
        """``at_start``: the frames begin at the utterance's first frame (the export's window_sum
        correction touches only the utterance's first 20 samples); False for streaming windows
        that start later."""
        z = torch.cat([magnitude * torch.cos(phase), magnitude * torch.sin(phase)], dim=1)
        if frame_mask is not None:
            z = z * frame_mask.to(z.dtype)
        y = F.conv_transpose1d(z, self.inverse_basis.to(z.dtype), stride=HOP)[:, 0]
        if at_start:
            ws = self.window_sum.to(y.dtype)
            n = min(N_FFT, y.shape[-1])
            head = y[:, :n]
            y = torch.cat([torch.where(ws[:n] > _TINY, head / ws[:n], head), y[:, n:]], dim=1)
        y = y * float(N_FFT // HOP)
        return y[:, N_FFT // 2: y.shape[-1] - N_FFT // 2]
