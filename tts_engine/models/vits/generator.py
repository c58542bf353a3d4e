"""The HiFi-GAN generator (vocoder): upsampling convolutions and residual blocks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .config import VitsConfig
from .layers import (
    ChannelsLastConv1d,
    ChannelsLastConvTranspose1d,
    _leaky_masked,
    _leaky_masked_,
    _masked,
    padding_same,
)


class ResBlock1(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            ChannelsLastConv1d(channels, channels, kernel, dilation=d, padding=padding_same(kernel, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            ChannelsLastConv1d(channels, channels, kernel, padding=padding_same(kernel)) for _ in dilations
        )

    def forward(self, x: Tensor, mask: Tensor | None, x_act: Tensor | None = None) -> Tensor:
        """``x_act``: leaky_relu(x) * mask when the caller already has it (shared by sibling blocks)."""
        for k, (c1, c2) in enumerate(zip(self.convs1, self.convs2)):
            y = c1(x_act if k == 0 and x_act is not None else _leaky_masked(x, mask))
            x = c2(_leaky_masked(y, mask)).add_(x)  # x + c2(...), without a new buffer
        return x


class ResBlock2(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            ChannelsLastConv1d(channels, channels, kernel, dilation=d, padding=padding_same(kernel, d))
            for d in dilations
        )

    def forward(self, x: Tensor, mask: Tensor | None, x_act: Tensor | None = None) -> Tensor:
        """``x_act``: leaky_relu(x) * mask when the caller already has it (shared by sibling blocks)."""
        for k, conv in enumerate(self.convs):
            y = conv(x_act if k == 0 and x_act is not None else _leaky_masked(x, mask))
            x = y.add_(x)  # x + conv(...), without a new buffer
        return x



class Generator(nn.Module):
    """HiFi-GAN generator: latent frames -> waveform, upsampling by prod(up_rates)."""

    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        self.rates = cfg.up_rates
        self.n_kernels = len(cfg.rb_kernels)
        self.conv_pre = ChannelsLastConv1d(cfg.inter, cfg.up_initial, 7, padding=3)
        block = ResBlock1 if cfg.resblock == "1" else ResBlock2
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = cfg.up_initial
        for rate, kernel in zip(cfg.up_rates, cfg.up_kernels):
            self.ups.append(
                ChannelsLastConvTranspose1d(ch, ch // 2, kernel, rate, padding=(kernel - rate) // 2))
            ch //= 2
            for k, d in zip(cfg.rb_kernels, cfg.rb_dilations):
                self.resblocks.append(block(ch, k, d))
        self.conv_post = ChannelsLastConv1d(ch, 1, 7, padding=3, bias=False)
        if cfg.gin:
            self.cond = nn.Conv1d(cfg.gin, cfg.up_initial, 1)

    def forward(self, z: Tensor, frame_mask: Tensor | None = None, g: Tensor | None = None) -> Tensor:
        """z [B, C, T] -> [B, T * hop]. ``frame_mask`` [B, 1, T] zeroes every conv input past each item's end."""
        x = self.conv_pre(_masked(z, frame_mask))
        if g is not None:
            x = x + self.cond(g)
        mask = frame_mask
        for i, (up, rate) in enumerate(zip(self.ups, self.rates)):
            # x is a fresh tensor used only through this activation: done in place.
            x = up(_leaky_masked_(x, mask))
            if mask is not None:
                mask = mask.repeat_interleave(rate, dim=-1)
            blocks = self.resblocks[i * self.n_kernels : (i + 1) * self.n_kernels]
            # Every block starts with leaky_relu(x) * mask: computed once for all of them.
            x_act = _leaky_masked(x, mask)
            # Mean of the blocks' outputs, accumulated in place into the first one (a fresh tensor).
            acc = blocks[0](x, mask, x_act)
            for block in blocks[1:]:
                acc.add_(block(x, mask, x_act))
            x = acc.div_(self.n_kernels)
        x = self.conv_post(_leaky_masked_(x, mask, 0.01))  # Piper uses the default slope here
        return torch.tanh(x).squeeze(1)


# --------------------------------------------------------------------------- the model
