"""Building blocks shared by the VITS stages: masks, fused convolutions, layer norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tts_engine.models.upsampling import PolyphaseConvTranspose1d

LRELU_SLOPE = 0.1


def sequence_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """[B] lengths -> [B, T] float mask."""
    max_len = int(lengths.max()) if max_len is None else max_len
    steps = torch.arange(max_len, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).float()


def padding_same(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class OneDNNConv1d(nn.Conv1d):
    """nn.Conv1d run by oneDNN on CPU, with its weight packed once instead of on every call.

    What torch's conv1d costs here, per call, for the text encoder's and flow's wide convs:
    1. oneDNN reorders the weight (1.5-1.8 MB each) into its blocked layout: ~35 % of their
       oneDNN time for a short sentence. The packed copy comes from torch's prepacked-convolution
       ops (the ones ``torch.jit.freeze`` uses; checked at import) and is rebuilt whenever the
       weight or bias tensor changes (``load_state_dict``, ``.to()``), so it is never stale.
    2. For a batch of one with channels * length <= 20480 (short sentences) torch skips oneDNN
       for its generic im2col path, 1.2-4x slower here.
    Autograd, other devices and dtypes take the stock path.
    """

    _pack: object | None = None
    _pack_key: tuple | None = None

    def forward(self, x: Tensor) -> Tensor:
        if (x.device.type != "cpu" or x.dtype != torch.float32 or self.padding_mode != "zeros"
                or (torch.is_grad_enabled() and self.weight.requires_grad)):
            return super().forward(x)
        if _HAS_PREPACKED_CONV:
            y = torch.ops.mkldnn_prepacked.conv2d_run(x.unsqueeze(2).contiguous(), self._packed())
            return y.squeeze(2)
        if _HAS_MKLDNN_CONV:
            return torch.mkldnn_convolution(x, self.weight, self.bias, self.padding, self.stride,
                                            self.dilation, self.groups)
        return super().forward(x)

    def _packed(self) -> object:
        w, b = self.weight, self.bias
        tensors = (w,) if b is None else (w, b)
        if any(t.is_inference() for t in tensors):  # no version counter: cannot tell if it changed
            return self._pack_now()
        key = tuple((t.data_ptr(), t._version) for t in tensors)
        if self._pack_key != key:
            self._pack, self._pack_key = self._pack_now(), key
        return self._pack

    def _pack_now(self) -> object:
        b = self.bias
        return torch.ops.mkldnn_prepacked.conv2d_prepack(
            self.weight.detach().unsqueeze(2).contiguous(), None if b is None else b.detach(),
            [1, self.stride[0]], [0, self.padding[0]], [1, self.dilation[0]], self.groups,
            [1, self.in_channels, 1, 64], "none")  # 64: a size hint only; any length runs

    def __getstate__(self) -> dict:
        # The packed weight is a cache (and not picklable): copies and pickles rebuild it.
        state = dict(super().__getstate__())
        state.pop("_pack", None)
        state.pop("_pack_key", None)
        return state


def _has_prepacked_conv() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn_prepacked, "conv2d_run")
    except (AttributeError, RuntimeError):
        return False


_HAS_MKLDNN_CONV = torch.backends.mkldnn.is_available() and hasattr(torch, "mkldnn_convolution")
_HAS_PREPACKED_CONV = _has_prepacked_conv()


class PointwiseConv1d(nn.Conv1d):
    """A kernel-1 nn.Conv1d as one batched matrix product (bias + W @ x).

    From ~20k input elements up (longer sentences) torch hands these ~70 small products per
    sentence to oneDNN, which reorders the weight on every call; one sgemm measured 1.3-1.8x
    faster there, and the same below.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.kernel_size[0] != 1 or self.stride[0] != 1 or self.padding[0] != 0 or self.groups != 1:
            return super().forward(x)
        w = self.weight.squeeze(-1).expand(x.shape[0], -1, -1)
        return torch.bmm(w, x) if self.bias is None else torch.baddbmm(self.bias[:, None], w, x)


class DepthwiseConv1d(nn.Conv1d):
    """A depthwise (groups == channels) nn.Conv1d as ``kernel`` shifted multiply-adds.

    oneDNN's depthwise kernel takes ~3 us on these [192 x tokens] inputs, but torch's convolution
    wrapper adds ~50 us per call; four elementwise ops cost ~15 us.
    """

    def forward(self, x: Tensor) -> Tensor:
        c = self.in_channels
        if self.groups != c or self.out_channels != c or self.stride[0] != 1 or self.padding_mode != "zeros":
            return super().forward(x)
        k, d, p = self.kernel_size[0], self.dilation[0], self.padding[0]
        length = x.shape[-1] + 2 * p - d * (k - 1)
        x = F.pad(x, (p, p))
        w = self.weight[:, 0, :, None]  # [C, k, 1]
        first = x[..., :length]
        y = first * w[:, 0] if self.bias is None else torch.addcmul(self.bias[:, None], first, w[:, 0])
        for j in range(1, k):
            y.addcmul_(x[..., j * d : j * d + length], w[:, j])
        return y


class LayerNorm(nn.Module):
    """LayerNorm over the channel axis of [B, C, T] tensors (Piper names: gamma/beta)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.transpose(1, -1), (x.shape[1],), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


# --------------------------------------------------------------------------- text encoder



def _channels_last_4d(x: Tensor) -> Tensor:
    """[B, C, T] -> a [B, C, 1, T] channels-last view (copying only if x is not time-major)."""
    x = x.unsqueeze(2)
    return x if x.is_contiguous(memory_format=torch.channels_last) else x.contiguous(
        memory_format=torch.channels_last)


def _store_time_major(weight: nn.Parameter) -> nn.Parameter:
    """The same [out, in, k] parameter, stored so that ``weight.unsqueeze(2)`` is channels-last:
    torch then hands it to oneDNN without first copying it into that layout on every call
    (up to 1/3 of a convolution's time on a streaming chunk's few frames).
    ``load_state_dict`` and ``.to()`` keep this layout."""
    data = weight.detach().unsqueeze(2).contiguous(memory_format=torch.channels_last).squeeze(2)
    return nn.Parameter(data, requires_grad=weight.requires_grad)


class ChannelsLastConv1d(nn.Conv1d):
    """nn.Conv1d computed channels-last on CPU (see above); other devices use the stock path."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.weight = _store_time_major(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or self.padding_mode != "zeros":
            return super().forward(x)
        y = F.conv2d(_channels_last_4d(x), self.weight.unsqueeze(2), self.bias, (1, self.stride[0]),
                     (0, self.padding[0]), (1, self.dilation[0]), self.groups)
        return y.squeeze(2)


class ChannelsLastConvTranspose1d(PolyphaseConvTranspose1d):
    """nn.ConvTranspose1d (no output_padding) computed channels-last on CPU (see above): HiFi-GAN's
    shape (kernel = 2 x stride) as a polyphase convolution, others as a transposed one."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.weight = _store_time_major(self.weight)

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if x.device.type != "cpu" or output_size is not None or self.is_polyphase():
            return super().forward(x, output_size)
        y = F.conv_transpose2d(_channels_last_4d(x), self.weight.unsqueeze(2), self.bias, (1, self.stride[0]),
                               (0, self.padding[0]), (0, self.output_padding[0]), self.groups,
                               (1, self.dilation[0]))
        return y.squeeze(2)



def _masked(x: Tensor, mask: Tensor | None) -> Tensor:
    return x if mask is None else x * mask


def _leaky_masked(x: Tensor, mask: Tensor | None, slope: float = LRELU_SLOPE) -> Tensor:
    """leaky_relu(x) * mask as one new tensor (for an x that is still needed)."""
    y = F.leaky_relu(x, slope)
    return y if mask is None else y.mul_(mask)


def _leaky_masked_(x: Tensor, mask: Tensor | None, slope: float = LRELU_SLOPE) -> Tensor:
    """leaky_relu(x) * mask, overwriting x (for an x used only through this)."""
    x = F.leaky_relu(x, slope, inplace=True)
    return x if mask is None else x.mul_(mask)
