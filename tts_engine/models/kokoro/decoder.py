"""Kokoro's decoder: StyleTTS 2's AdaIN residual stack, then an iSTFTNet generator.

Rates, for an utterance of F text-aligned frames (600 samples each):

- ``Decoder``: content (F), F0 / energy curves (2F, brought to F by stride-2 convs), 5 AdaIN
  residual blocks, the last doubling the rate to 2F;
- ``Generator``: two transposed-conv upsamplings (x10 -> 20F, x6 -> 120F, plus one reflected
  frame -> 120F + 1 STFT frames), each followed by three multi-receptive-field AdaIN/Snake
  residual blocks and fed the harmonic source's spectrum through ``noise_convs``/``noise_res``;
  ``conv_post`` predicts 11 log-magnitudes and 11 phases, inverted by a hop-5 iSTFT -> 600F samples.

Every AdaIN normalizes over its whole input (per utterance). ``mask``s restrict that, and every
convolution's input, to an item's valid frames in padded batches; ``NormStats`` records or replays
the statistics for chunked (streaming) decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .harmonic import HarmonicSource, InverseSTFT, SourceSTFT
from .layers import AdaIN1d, AdainResBlk1d, NormStats, masked

UPSAMPLE_RATES = (10, 6)
UPSAMPLE_KERNELS = (20, 12)
RESBLOCK_KERNELS = (3, 7, 11)
RESBLOCK_DILATIONS = (1, 3, 5)
SAMPLES_PER_FRAME = 600  # 2 (decode.3) x 10 x 6 x 5 (iSTFT hop)


@dataclass
class FrameMasks:
    """Valid-frame masks [B, 1, T] at each rate (None everywhere for a batch of one)."""

    f1: Tensor | None = None  # F
    f2: Tensor | None = None  # 2F
    f20: Tensor | None = None  # 20F
    f120: Tensor | None = None  # 120F + 1

    @staticmethod
    def build(frames: Tensor, total: int) -> FrameMasks:
        steps = torch.arange(120 * total + 1, device=frames.device)

        def mask(length: Tensor, size: int) -> Tensor:
            return (steps[None, :size] < length[:, None]).unsqueeze(1).float()

        return FrameMasks(mask(frames, total), mask(2 * frames, 2 * total), mask(20 * frames, 20 * total),
                          mask(120 * frames + 1, 120 * total + 1))


class AdaINResBlock1(nn.Module):
    """HiFi-GAN ResBlock1 with AdaIN before each conv and Snake activations."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...], style_dim: int) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2)
                                    for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2)
                                    for _ in dilations)
        self.adain1 = nn.ModuleList(AdaIN1d(style_dim, channels) for _ in dilations)
        self.adain2 = nn.ModuleList(AdaIN1d(style_dim, channels) for _ in dilations)
        n = len(dilations)
        self.alpha1 = nn.ParameterList(nn.Parameter(torch.ones(1, channels, 1)) for _ in range(n))
        self.alpha2 = nn.ParameterList(nn.Parameter(torch.ones(1, channels, 1)) for _ in range(n))
        self.inv_alpha1 = nn.ParameterList(nn.Parameter(torch.ones(1, channels, 1)) for _ in range(n))
        self.inv_alpha2 = nn.ParameterList(nn.Parameter(torch.ones(1, channels, 1)) for _ in range(n))

    def forward(self, x: Tensor, s: Tensor, mask: Tensor | None, stats: NormStats | None) -> Tensor:
        for k, (c1, c2, n1, n2) in enumerate(zip(self.convs1, self.convs2, self.adain1, self.adain2)):
            h = c1(masked(n1.snake(x, s, self.alpha1[k], self.inv_alpha1[k], mask, stats), mask))
            h = c2(masked(n2.snake(h, s, self.alpha2[k], self.inv_alpha2[k], mask, stats), mask))
            x = h.add_(x)  # h is a fresh conv output; x (the caller's) is left untouched
        return x


class Generator(nn.Module):
    def __init__(self, style_dim: int = 128, in_channels: int = 512) -> None:
        super().__init__()
        self.m_source = HarmonicSource()
        self.source_stft = SourceSTFT()
        self.istft = InverseSTFT()
        spec_channels = 22
        self.ups = nn.ModuleList()
        self.noise_convs = nn.ModuleList()
        self.noise_res = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = in_channels
        for i, (rate, kernel) in enumerate(zip(UPSAMPLE_RATES, UPSAMPLE_KERNELS)):
            out = ch // 2
            self.ups.append(nn.ConvTranspose1d(ch, out, kernel, rate, padding=(kernel - rate) // 2))
            if i + 1 < len(UPSAMPLE_RATES):
                stride = UPSAMPLE_RATES[i + 1]
                self.noise_convs.append(nn.Conv1d(spec_channels, out, stride * 2, stride=stride,
                                                  padding=(stride + 1) // 2))
                self.noise_res.append(AdaINResBlock1(out, 7, RESBLOCK_DILATIONS, style_dim))
            else:
                self.noise_convs.append(nn.Conv1d(spec_channels, out, 1))
                self.noise_res.append(AdaINResBlock1(out, 11, RESBLOCK_DILATIONS, style_dim))
            for k in RESBLOCK_KERNELS:
                self.resblocks.append(AdaINResBlock1(out, k, RESBLOCK_DILATIONS, style_dim))
            ch = out
        self.conv_post = nn.Conv1d(ch, spec_channels, 7, padding=3)

    def source_spectrum(self, f0: Tensor, f0_lengths: Tensor | None = None) -> Tensor:
        """F0 [B, 2F] -> harmonic-source spectrum [B, 22, 120F + 1], each item on its own length."""
        if f0_lengths is None:
            return torch.stack([self.source_stft(self.m_source(f)) for f in f0])
        total = 60 * f0.shape[-1] + 1
        out = f0.new_zeros(f0.shape[0], 22, total)
        for i, (f, n) in enumerate(zip(f0, f0_lengths.tolist())):
            spec = self.source_stft(self.m_source(f[:n]))
            out[i, :, : spec.shape[-1]] = spec
        return out

    def forward(self, x: Tensor, s: Tensor, source: Tensor, masks: FrameMasks,
                stats: NormStats | None = None, at_start: bool = True) -> Tensor:
        """x [B, 512, 2F], source spectrum [B, 22, 120F + 1] -> audio [B, 600F]."""
        stage_masks = (masks.f20, masks.f120)
        in_mask = masks.f2
        source = masked(source, masks.f120)
        for i, (up, noise_conv, noise_res) in enumerate(zip(self.ups, self.noise_convs, self.noise_res)):
            mask = stage_masks[i]
            x = F.leaky_relu(x, 0.1)
            x_source = noise_res(noise_conv(source), s, mask, stats)
            x = up(masked(x, in_mask))
            if i == len(self.ups) - 1:
                x = F.pad(x, (1, 0), mode="reflect")
            x = x + x_source
            blocks = self.resblocks[3 * i: 3 * i + 3]
            acc = blocks[0](x, s, mask, stats)
            acc.add_(blocks[1](x, s, mask, stats)).add_(blocks[2](x, s, mask, stats))
            x = acc.div_(3.0)
            in_mask = mask
        x = self.conv_post(masked(F.leaky_relu(x, 0.01), in_mask).to(self.conv_post.weight.dtype))
        half = x.shape[1] // 2
        return self.istft(torch.exp(x[:, :half]), torch.sin(x[:, half:]), masks.f120, at_start)


class Decoder(nn.Module):
    def __init__(self, dim_in: int = 512, style_dim: int = 128) -> None:
        super().__init__()
        self.encode = AdainResBlk1d(dim_in + 2, 1024, style_dim)
        self.decode = nn.ModuleList([AdainResBlk1d(1024 + 2 + 64, 1024, style_dim) for _ in range(3)]
                                    + [AdainResBlk1d(1024 + 2 + 64, 512, style_dim, upsample=True)])
        self.F0_conv = nn.Conv1d(1, 1, 3, stride=2, padding=1)
        self.N_conv = nn.Conv1d(1, 1, 3, stride=2, padding=1)
        self.asr_res = nn.ModuleList([nn.Conv1d(512, 64, 1)])
        self.generator = Generator(style_dim, 512)

    def hidden(self, asr: Tensor, f0: Tensor, n: Tensor, s: Tensor, masks: FrameMasks,
               stats: NormStats | None = None) -> Tensor:
        """asr [B, 512, F], f0 / n [B, 2F] -> generator input [B, 512, 2F]."""
        f0d = self.F0_conv(masked(f0.unsqueeze(1), masks.f2))
        nd = self.N_conv(masked(n.unsqueeze(1), masks.f2))
        asr = masked(asr, masks.f1)
        x = self.encode(torch.cat([asr, f0d, nd], dim=1), s, masks.f1, stats=stats)
        res = self.asr_res[0](asr)
        for block in self.decode:
            x = torch.cat([x, res, f0d, nd], dim=1)
            x = block(x, s, masks.f1, masks.f2, stats) if block.upsample else block(x, s, masks.f1, stats=stats)
        return x

    def forward(self, asr: Tensor, f0: Tensor, n: Tensor, s: Tensor, source: Tensor, masks: FrameMasks,
                stats: NormStats | None = None, at_start: bool = True) -> Tensor:
        x = self.hidden(asr, f0, n, s, masks, stats)
        return self.generator(x, s, source, masks, stats, at_start)
