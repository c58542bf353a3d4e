"""HiFi-GAN's upsampling layer (a transposed convolution, kernel = 2 x stride) as one ordinary convolution.

Piper's and Kokoro's vocoders upsample with ``ConvTranspose1d(kernel=2s, stride=s, padding=s/2)``.
On CPU, oneDNN builds a new JIT primitive for every input length it has not seen recently, and
every sentence has its own length: for a transposed convolution that build is the costly part
(2-19 ms per layer, ~21 ms of a 4.5 s sentence's ~200 ms render, against ~6 ms of arithmetic;
docs/BENCHMARKS.md). Building an ordinary convolution costs 0.3-1 ms.

The polyphase form: output sample ``n*s + q`` depends on input frames ``n-1, n`` for phases
``q < s/2`` and ``n, n+1`` for ``q >= s/2``. Row ``r`` of one convolution with 2 taps over
``x[r-1], x[r]`` and ``s * out`` channels computes the upper phases of frame ``r-1`` and then the
lower phases of frame ``r``; laid out time-major (channels-last), those rows *are* the output
sequence, read from an offset of ``s/2`` phases. So the result is a strided view, no copy, and no
arithmetic is wasted on zero taps. Equal to the transposed convolution up to float summation order.

Used by Piper's vocoder, whose activations are time-major. Kokoro's decoder keeps the transposed
convolution: its activations are channels-first, and the two layout copies cost more there
(1.23 s vs 1.17 s per sentence, measured side by side) than the build it saves.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PolyphaseConvTranspose1d(nn.ConvTranspose1d):
    """A drop-in ``nn.ConvTranspose1d``; on CPU, the shapes above run as one convolution."""

    _phase_key: tuple | None = None
    _phase_weight: Tensor | None = None
    _phase_bias: Tensor | None = None

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if output_size is not None or x.device.type != "cpu" or not self.is_polyphase():
            return super().forward(x, output_size)
        weight, bias = self._phases()
        return polyphase_upsample(x, weight, bias, self.stride[0], self.out_channels)

    def is_polyphase(self) -> bool:
        """Whether this layer has the shape the polyphase form covers."""
        s = self.stride[0]
        return (s % 2 == 0 and self.kernel_size[0] == 2 * s and self.padding[0] == s // 2
                and self.output_padding[0] == 0 and self.groups == 1 and self.dilation[0] == 1
                and self.padding_mode == "zeros")

    def _phases(self) -> tuple[Tensor, Tensor | None]:
        w, b = self.weight, self.bias
        key = tuple((t.data_ptr(), t.dtype, None if t.is_inference() else t._version)
                    for t in ((w,) if b is None else (w, b)))
        if key != self._phase_key:
            self._phase_weight = phase_weight(w.detach(), self.stride[0])
            self._phase_bias = None if b is None else b.detach().repeat(self.stride[0])
            self._phase_key = key
        return self._phase_weight, self._phase_bias

    def __getstate__(self) -> dict:
        # The phase weights are a cache derived from the weight: copies and pickles rebuild them.
        state = dict(super().__getstate__())
        for name in ("_phase_key", "_phase_weight", "_phase_bias"):
            state.pop(name, None)
        return state


def phase_weight(weight: Tensor, stride: int) -> Tensor:
    """[in, out, 2s] transposed-convolution weight -> [s*out, in, 1, 2] convolution weight (channels-last).

    Output channel block ``j`` holds phase ``q = (j + s/2) mod s``; tap 0 reads ``x[r-1]``, tap 1 ``x[r]``.
    """
    s, h = stride, stride // 2
    phases = [q for q in range(h, s)] + [q for q in range(h)]
    # Upper phases (row r = frame n + 1): x[n] * W[q + h] + x[n + 1] * W[q - h].
    # Lower phases (row r = frame n):     x[n - 1] * W[q + h + s] + x[n] * W[q + h].
    earlier = [q + h if q >= h else q + h + s for q in phases]
    later = [q - h if q >= h else q + h for q in phases]
    taps = torch.stack([weight[:, :, earlier], weight[:, :, later]], dim=-1)  # [in, out, s, 2]
    taps = taps.permute(2, 1, 0, 3).reshape(s * weight.shape[1], weight.shape[0], 1, 2)
    return taps.contiguous(memory_format=torch.channels_last)


def polyphase_upsample(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, out_channels: int) -> Tensor:
    """[B, in, T] -> [B, out, T * stride], as ``phase_weight``'s convolution; a view when x is time-major."""
    batch, _, frames = x.shape
    x4 = x.unsqueeze(2)
    time_major = x4.is_contiguous(memory_format=torch.channels_last)
    if not time_major:
        x4 = x4.contiguous(memory_format=torch.channels_last)
    rows = F.conv2d(x4, weight.to(x.dtype), None if bias is None else bias.to(x.dtype), 1, (0, 1))  # T + 1 rows
    if not rows.is_contiguous(memory_format=torch.channels_last):
        rows = rows.contiguous(memory_format=torch.channels_last)
    row_size = stride * out_channels
    y = rows.as_strided((batch, out_channels, frames * stride), ((frames + 1) * row_size, 1, out_channels),
                        rows.storage_offset() + (stride // 2) * out_channels)
    return y if time_major else y.contiguous()
