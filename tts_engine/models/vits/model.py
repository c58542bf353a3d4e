"""Inference-only VITS (the Piper flavour) in plain torch.

Written from the published architecture (Kim et al., 2021, "Conditional
Variational Autoencoder with Adversarial Learning for End-to-End
Text-to-Speech") and the layout of Piper's exported voices. Module and
parameter names follow Piper's so a voice's ``.onnx`` initializers load by
name (see ``weights.py``).

Two stages, each callable on its own so the serving layer can batch and stream:

- ``acoustic(ids, lengths, ...) -> (latent [B, C, frames], frame_lengths [B])``
- ``vocoder(latent, frame_lengths=None) -> waveform [B, frames * hop]``

Batching contract: every operation that mixes time steps sees zeros beyond an
item's length (masks before each convolution), so a padded batch returns,
per item, the same audio as running that item alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tts_engine.models.shape_buckets import bucketed

from .config import VitsConfig
from .duration import StochasticDurationPredictor
from .flow import ResidualCouplingBlock
from .generator import Generator
from .layers import sequence_mask
from .text_encoder import TextEncoder

# --------------------------------------------------------------------------- helpers



@dataclass
class NoiseSpec:
    """Per-item randomness, so an item's audio does not depend on what it is batched with."""

    noise_scale: float = 0.667
    noise_w: float = 0.8
    length_scale: float = 1.0
    seed: int | None = None
    generator: torch.Generator | None = field(default=None, repr=False)

    def rng(self, device: torch.device) -> torch.Generator:
        if self.generator is None:
            self.generator = torch.Generator(device="cpu")
            if self.seed is None:
                self.generator.seed()
            else:
                self.generator.manual_seed(self.seed)
        return self.generator


class Vits(nn.Module):
    """``width_buckets``: token and frame widths are computed rounded up to this many sizes per
    octave (``shape_buckets.py``; ``PiperFamily`` sets it on CPU); 0 computes every width exactly."""

    width_buckets = 0

    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.enc_p = TextEncoder(cfg)
        self.dp = StochasticDurationPredictor(cfg)
        self.flow = ResidualCouplingBlock(cfg)
        self.dec = Generator(cfg)
        if cfg.n_speakers > 1:
            self.emb_g = nn.Embedding(cfg.n_speakers, cfg.gin)

    @property
    def hop(self) -> int:
        return self.cfg.hop

    def speaker_conditioning(self, speaker_ids: Tensor | None, batch: int) -> Tensor | None:
        """[B, gin, 1] speaker embedding for multi-speaker voices; None for single-speaker ones."""
        if self.cfg.n_speakers <= 1:
            return None
        if speaker_ids is None:
            speaker_ids = torch.zeros(batch, dtype=torch.long, device=self.emb_g.weight.device)
        return self.emb_g(speaker_ids).unsqueeze(-1)

    def acoustic(
        self,
        ids: Tensor,
        lengths: Tensor,
        noise: Sequence[NoiseSpec] | NoiseSpec | None = None,
        speaker_ids: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Phoneme ids [B, T] -> (latent z [B, inter, frames], frame_lengths [B])."""
        z, frame_lengths, _ = self.acoustic_timed(ids, lengths, noise, speaker_ids)
        return z, frame_lengths

    @torch.inference_mode()
    def acoustic_timed(
        self,
        ids: Tensor,
        lengths: Tensor,
        noise: Sequence[NoiseSpec] | NoiseSpec | None = None,
        speaker_ids: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``acoustic`` plus the durations it aligned with: frames per input id [B, T] (0 beyond
        each length); word timestamps are these times ``hop`` samples."""
        b, t = ids.shape
        specs = _per_item(noise, b)
        device = ids.device
        ids = F.pad(ids, (0, bucketed(t, self.width_buckets) - t))  # masked beyond lengths
        x, mean, log_std, x_mask = self.enc_p(ids, lengths)
        g = self.speaker_conditioning(speaker_ids, b)
        dtype = x.dtype

        dp_noise = _stack_noise([(2, int(n)) for n in lengths], specs, device, dtype, ids.shape[1], "noise_w")
        log_w = self.dp(x, x_mask, dp_noise, g=g)
        length_scale = torch.tensor([s.length_scale for s in specs], device=device, dtype=dtype)
        durations = torch.ceil(torch.exp(log_w) * x_mask * length_scale[:, None, None]).squeeze(1)
        frame_lengths = durations.sum(-1).clamp_min(1).long()
        longest = int(frame_lengths.max())
        frames = bucketed(longest, self.width_buckets)

        # Length regulation: frame f of item b takes token idx = #tokens whose cumulative end <= f.
        ends = torch.cumsum(durations, dim=-1)
        steps = torch.arange(frames, device=device, dtype=dtype)
        token = (steps[None, :, None] >= ends[:, None, :]).sum(-1).clamp_max(ids.shape[1] - 1)
        frame_mask = sequence_mask(frame_lengths, frames).unsqueeze(1).to(dtype)
        gather = token.unsqueeze(1).expand(-1, mean.shape[1], -1)
        mean_f = mean.gather(2, gather) * frame_mask
        log_std_f = log_std.gather(2, gather) * frame_mask

        eps = _stack_noise([(mean.shape[1], int(n)) for n in frame_lengths], specs, device, dtype, frames, "noise_scale")
        z_p = mean_f + eps * torch.exp(log_std_f)
        z = self.flow(z_p, frame_mask, g=g) * frame_mask
        return z[:, :, :longest], frame_lengths, durations[:, :t].long()

    @torch.inference_mode()
    def vocoder(
        self, z: Tensor, frame_lengths: Tensor | None = None, speaker_ids: Tensor | None = None
    ) -> Tensor:
        """Latent [B, inter, frames] -> audio [B, frames * hop]; pass frame_lengths for padded batches."""
        dec_dtype = self.dec.conv_pre.weight.dtype
        width = z.shape[-1]
        padded = bucketed(width, self.width_buckets)
        mask = None
        if padded > width or (frame_lengths is not None and z.shape[0] > 1):
            if frame_lengths is None:
                frame_lengths = torch.full((z.shape[0],), width, device=z.device)
            # In the decoder's dtype: a float32 mask would lift a bfloat16 decoder's activations back
            # to float32 (a padded batch on the bf16 CPU vocoder failed in its first convolution).
            mask = sequence_mask(frame_lengths, padded).unsqueeze(1).to(dec_dtype)
            z = F.pad(z, (0, padded - width))
        g = self.speaker_conditioning(speaker_ids, z.shape[0])
        audio = self.dec(z.to(dec_dtype), mask, g=None if g is None else g.to(dec_dtype))
        return audio[:, : width * self.hop].float()

    def vocoder_stream(
        self,
        z: Tensor,
        first_chunk: int = 20,
        chunk: int = 80,
        context: int = 16,
        speaker_ids: Tensor | None = None,
    ) -> Iterator[Tensor]:
        """Decode one item's latent [1, C, T] in chunks; each chunk is decoded with ``context``
        frames of overlap on both sides (>= the vocoder's receptive field) and trimmed, so the
        joined audio equals a one-shot decode. Yields [samples] tensors."""
        total = z.shape[-1]
        start = 0
        size = first_chunk
        while start < total:
            end = min(start + size, total)
            lo, hi = max(0, start - context), min(total, end + context)
            audio = self.vocoder(z[:, :, lo:hi], speaker_ids=speaker_ids)[0]
            yield audio[(start - lo) * self.hop : (end - lo) * self.hop]
            start, size = end, chunk


def _per_item(noise: Sequence[NoiseSpec] | NoiseSpec | None, batch: int) -> list[NoiseSpec]:
    if noise is None:
        return [NoiseSpec() for _ in range(batch)]
    if isinstance(noise, NoiseSpec):
        return [noise] * batch if batch == 1 else [NoiseSpec(noise.noise_scale, noise.noise_w,
                                                           noise.length_scale, noise.seed) for _ in range(batch)]
    if len(noise) != batch:
        raise ValueError(f"got {len(noise)} noise specs for a batch of {batch}")
    return list(noise)


def _stack_noise(
    shapes: list[tuple[int, int]], specs: list[NoiseSpec], device: torch.device, dtype: torch.dtype,
    width: int, scale_attr: str,
) -> Tensor:
    """Gaussian noise drawn per item at its own length (then zero-padded to ``width``)."""
    out = torch.zeros(len(specs), shapes[0][0], width, device=device, dtype=dtype)
    for i, ((channels, length), spec) in enumerate(zip(shapes, specs)):
        scale = getattr(spec, scale_attr)
        if scale == 0:
            continue
        draw = torch.randn(channels, length, generator=spec.rng(device))
        out[i, :, :length] = (draw * scale).to(device=device, dtype=dtype)
    return out
