"""``KokoroModel``: Kokoro-82M v1.0 in plain torch, inference only, weights from the int8 ONNX.

Two stages, like our VITS engine:

- ``acoustic(tokens, lengths, styles, speed) -> AcousticFeatures``: PL-BERT context, per-phoneme
  durations (integer frames of 600 samples), F0 / energy curves, frame-aligned content features;
- ``decode(feats) -> audio [B, samples]``: decoder + iSTFTNet generator, 24 kHz.

``tokens`` are the model's input ids *including* the boundary 0 at both ends (see
``voices.pad_tokens``); ``lengths`` count those pads. A padded batch returns, per item, what a
single run returns (the acoustic stage runs item by item by default, the decoder masks each
item's padding; see ``layers.py``); ``decode_stream`` yields one item's audio in chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from .albert import Albert
from .decoder import SAMPLES_PER_FRAME, Decoder, FrameMasks
from .layers import AdaIN1d, NormStats, one_intra_op_thread, sequence_mask
from .prosody import ProsodyPredictor, align
from .text_encoder import TextEncoder
from .weights import read_onnx_weights

SAMPLE_RATE = 24000
STYLE_DIM = 128

# Export-specific names -> ours.
_RENAMES = {
    "decoder.generator.stft.istft.stft.inverse_basis": "decoder.generator.istft.inverse_basis",
    "decoder.generator.stft.istft.stft.window_sum": "decoder.generator.istft.window_sum",
    "decoder.generator.stft_window": "decoder.generator.source_stft.window",
}


@dataclass
class AcousticFeatures:
    """What the decoder needs for a batch of B utterances of at most F frames (600 samples each).

    Values beyond an item's ``frames`` (``2 * frames`` for the curves) are zero.
    """

    asr: Tensor  # [B, 512, F] text-encoder features repeated by the durations
    f0: Tensor  # [B, 2F] F0 curve (Hz), two values per frame
    energy: Tensor  # [B, 2F] energy ("N") curve
    style: Tensor  # [B, 128] the decoder half of the style vectors
    frames: Tensor  # [B] int64 frames per item
    durations: Tensor  # [B, N] int64 frames per input token (boundary pads included; 0 beyond lengths)

    @property
    def batch_size(self) -> int:
        return int(self.asr.shape[0])

    def item(self, i: int) -> AcousticFeatures:
        """Item ``i`` alone, cropped to its own length."""
        n = int(self.frames[i])
        t = int((self.durations[i] > 0).sum())
        return AcousticFeatures(self.asr[i: i + 1, :, :n], self.f0[i: i + 1, : 2 * n],
                                self.energy[i: i + 1, : 2 * n], self.style[i: i + 1],
                                self.frames[i: i + 1], self.durations[i: i + 1, :t])

    def to(self, device: torch.device | str) -> AcousticFeatures:
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})


class KokoroModel(nn.Module):
    sample_rate = SAMPLE_RATE
    samples_per_frame = SAMPLES_PER_FRAME

    def __init__(self) -> None:
        super().__init__()
        self.bert = Albert()
        self.bert_encoder = nn.Linear(768, 512)
        self.predictor = ProsodyPredictor(STYLE_DIM, 512, 3, 50)
        self.text_encoder = TextEncoder(178, 512, 5, 3)
        self.decoder = Decoder(512, STYLE_DIM)
        for name, module in self.named_modules():
            if isinstance(module, AdaIN1d):
                module.stat_key = name

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_onnx(cls, path: Path | str) -> KokoroModel:
        """The model with the ONNX file's dequantized weights, eval mode, float32, on the CPU."""
        weights = read_onnx_weights(Path(path))
        model = cls()
        state = {_RENAMES.get(k, k): torch.from_numpy(v) for k, v in weights.state.items()}
        own = model.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"{Path(path).name}: weights do not fit the model "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        for key, value in state.items():
            if tuple(own[key].shape) != tuple(value.shape):
                raise ValueError(f"{key}: shape {tuple(value.shape)} != {tuple(own[key].shape)}")
        model.load_state_dict(state, strict=True)
        return model.eval()

    def quantize_dynamic(self) -> KokoroModel:
        """Int8 dynamic quantization (torch.ao) of PL-BERT's and its projection's Linear layers,
        the bulk of the acoustic stage's matrix products (in place; returns self). CPU only.

        Measured, it is not worth using: the acoustic stage is ~10 % of the time, the decoder
        (convolutional; torch's dynamic quantization covers Linear/LSTM only) stays float32, and
        the int8 PL-BERT moves some durations by a frame, as ONNX Runtime's int8 graph does
        (docs/BENCHMARKS.md). ``set_decoder_dtype(torch.bfloat16)`` is the effective CPU lever.
        torch.ao.quantization is deprecated upstream.
        """
        from torch.ao.quantization import quantize_dynamic

        wrapped = nn.ModuleDict({"bert": self.bert, "bert_encoder": self.bert_encoder})
        quantize_dynamic(wrapped, qconfig_spec={nn.Linear}, dtype=torch.qint8, inplace=True)
        self.bert, self.bert_encoder = wrapped["bert"], wrapped["bert_encoder"]
        return self

    @property
    def device(self) -> torch.device:
        return self.text_encoder.embedding.weight.device

    # ------------------------------------------------------------------ stage 1
    @torch.inference_mode()
    def acoustic(self, tokens: Tensor, lengths: Tensor | None, styles: Tensor,
                 speed: float | Tensor = 1.0, batched: bool = False) -> AcousticFeatures:
        """tokens [B, N] (0-padded beyond ``lengths``), styles [B, 256], speed float or [B].

        By default the items of a batch run one at a time (each on its own length) and are then
        padded together, so every item's features are bit-identical to a single run's. That
        matters: the harmonic source turns last-bit differences of F0 into sample differences of
        up to ~0.1 (~0.1 dB log-mel, see tests/test_kokoro_model.py). ``batched=True`` runs one
        padded, masked pass instead (fewer, larger ops: faster on a GPU); its features equal
        single runs' to float rounding only.

        On the CPU this stage runs on one intra-op thread: its ops are small (tens to hundreds of
        tokens or frames) and gain little from a second thread, while on a shared 2-core machine
        every thread hand-off can wait out a descheduled worker (measured 10 s instead of 0.45 s
        for a 5 s sentence).
        """
        device = self.device
        tokens = tokens.to(device)
        b, n = tokens.shape
        lengths = torch.full((b,), n, dtype=torch.long) if lengths is None else lengths
        lengths = lengths.to(device)
        styles = styles.to(device=device, dtype=torch.float32).reshape(b, -1)
        speed_t = torch.as_tensor(speed, dtype=torch.float32, device=device).reshape(-1).expand(b)
        with one_intra_op_thread(tokens):
            if b == 1 or batched:
                return self._acoustic(tokens, lengths, styles, speed_t)
            items = [self._acoustic(tokens[i: i + 1, : int(lengths[i])], lengths[i: i + 1], styles[i: i + 1],
                                    speed_t[i: i + 1]) for i in range(b)]
        return _stack(items, n)

    def _acoustic(self, tokens: Tensor, lengths: Tensor, styles: Tensor, speed: Tensor) -> AcousticFeatures:
        _b, n = tokens.shape
        ragged = bool((lengths < n).any())
        lens = lengths if ragged else None
        token_mask = sequence_mask(lengths, n) if ragged else None
        s = styles[:, STYLE_DIM:]

        d_en = self.bert_encoder(self.bert(tokens, lens))
        d = self.predictor.text_encoder(d_en, s, lens, token_mask)
        durations = self.predictor.durations(d, lens, speed)
        frames = durations.sum(dim=1)
        total = int(frames.max())
        ragged_frames = bool((frames < total).any())
        masks = FrameMasks.build(frames, total) if ragged_frames else FrameMasks()
        en = align(d.transpose(1, 2), durations, total)
        f0, energy = self.predictor.f0_energy(en, s, frames if ragged_frames else None, masks.f1, masks.f2)
        asr = align(self.text_encoder(tokens, lens, token_mask), durations, total)
        return AcousticFeatures(asr, f0, energy, styles[:, :STYLE_DIM], frames, durations)

    # ------------------------------------------------------------------ stage 2
    def decoder_dtype(self) -> torch.dtype:
        return self.decoder.encode.conv1.weight.dtype

    def set_decoder_dtype(self, dtype: torch.dtype) -> KokoroModel:
        """Run the decoder in ``dtype``; the harmonic source and its STFT, and the last conv with
        the inverse STFT, stay float32.

        torch.float16 for CUDA; torch.bfloat16 on CPUs with AVX512-BF16 (or AMX) is the CPU speed
        lever: ~1.4x faster decoding on our benchmark VM. Why the output stage stays float32: in
        bf16 its log-magnitudes, phases and waveform carry 8-bit-mantissa rounding, 1.0-1.2 dB
        log-mel from float32 on four test sentences; with it in float32 0.36-0.40 dB, at the same
        speed (3.47 vs 3.45 s for the four). ONNX Runtime's int8 graph is 1-5 dB from its
        float one. Instance-norm statistics are computed in float32 either way.
        """
        self.decoder.to(dtype)
        generator = self.decoder.generator
        for part in (generator.m_source, generator.source_stft, generator.conv_post, generator.istft):
            part.float()
        return self

    def _source(self, feats: AcousticFeatures) -> Tensor:
        ragged = bool((feats.frames < feats.frames.max()).any())
        lengths = 2 * feats.frames if ragged else None
        return self.decoder.generator.source_spectrum(feats.f0.float(), lengths)

    def _run_decoder(self, feats: AcousticFeatures, source: Tensor, stats: NormStats | None = None,
                     at_start: bool = True, masks: FrameMasks | None = None) -> Tensor:
        dtype = self.decoder_dtype()
        if masks is None:
            total = feats.asr.shape[-1]
            ragged = bool((feats.frames < total).any())
            masks = FrameMasks.build(feats.frames.to(self.device), total) if ragged else FrameMasks()
        audio = self.decoder(feats.asr.to(self.device, dtype), feats.f0.to(self.device, dtype),
                             feats.energy.to(self.device, dtype), feats.style.to(self.device, dtype),
                             source.to(self.device, dtype), masks, stats, at_start).float()
        if masks.f1 is not None:  # silence beyond each item's end (the iSTFT's last frames spill over)
            n = (feats.frames.to(self.device) * SAMPLES_PER_FRAME)[:, None]
            audio = audio * (torch.arange(audio.shape[1], device=self.device)[None, :] < n)
        return audio

    @torch.inference_mode()
    def decode(self, feats: AcousticFeatures, source: Tensor | None = None) -> Tensor:
        """Audio [B, 600 * max(frames)]; item i is valid up to ``feats.frames[i] * 600``.

        ``source``: a precomputed harmonic-source spectrum [B, 22, 120F + 1] (diagnostics and
        tests); by default it is computed from ``feats.f0``.
        """
        return self._run_decoder(feats, self._source(feats) if source is None else source)

    @torch.inference_mode()
    def norm_stats(self, feats: AcousticFeatures) -> tuple[NormStats, Tensor]:
        """One full decode of a single item that records every AdaIN's statistics: (stats, audio)."""
        if feats.batch_size != 1:
            raise ValueError("norm_stats takes a single item (feats.item(i))")
        stats = NormStats(record=True)
        audio = self._run_decoder(feats, self._source(feats), stats)
        return stats.replay(), audio

    @torch.inference_mode()
    def decode_stream(self, feats: AcousticFeatures, first_chunk_frames: int = 10, chunk_frames: int = 40,
                      context_frames: int = 16, stats: NormStats | None = None) -> Iterator[Tensor]:
        """Yield one item's audio in chunks (1-D tensors), the first ``first_chunk_frames`` frames long.

        Kokoro's decoder normalizes every AdaIN layer over the *whole utterance*, so no chunk can
        be decoded exactly before the whole utterance has been: without ``stats``, this runs the
        one-shot decode (recording nothing) and yields its audio in chunks -- exact, with no
        latency gain. With ``stats`` (from ``norm_stats``), every chunk is decoded on its own
        window of ``context_frames`` extra frames on each side, with the utterance-wide harmonic
        source (its running phase) sliced to the window and the stats replayed; the central part
        is kept, so the chunks join into the one-shot audio (to float rounding).
        """
        if feats.batch_size != 1:
            raise ValueError("decode_stream takes a single item (feats.item(i))")
        total = int(feats.frames[0])
        bounds = _chunk_bounds(total, first_chunk_frames, chunk_frames)
        hop = SAMPLES_PER_FRAME
        if stats is None:
            audio = self.decode(feats)[0]
            for start, end in bounds:
                yield audio[start * hop: end * hop]
            return
        source = self._source(feats)  # the whole utterance's, sliced per window below
        for start, end in bounds:
            lo, hi = max(0, start - context_frames), min(total, end + context_frames)
            window = AcousticFeatures(feats.asr[..., lo:hi], feats.f0[..., 2 * lo: 2 * hi],
                                      feats.energy[..., 2 * lo: 2 * hi], feats.style,
                                      torch.tensor([hi - lo]), feats.durations)
            audio = self._run_decoder(window, source[..., 120 * lo: 120 * hi + 1], stats, at_start=lo == 0)
            yield audio[0, (start - lo) * hop: (end - lo) * hop]


def _stack(items: list[AcousticFeatures], n_tokens: int) -> AcousticFeatures:
    """Pad single-item features to a batch (zeros beyond each item's frames / tokens)."""
    frames = torch.cat([f.frames for f in items])
    total = int(frames.max())

    def pad(t: Tensor, size: int) -> Tensor:
        return torch.nn.functional.pad(t, (0, size - t.shape[-1]))

    return AcousticFeatures(
        asr=torch.cat([pad(f.asr, total) for f in items]),
        f0=torch.cat([pad(f.f0, 2 * total) for f in items]),
        energy=torch.cat([pad(f.energy, 2 * total) for f in items]),
        style=torch.cat([f.style for f in items]),
        frames=frames,
        durations=torch.cat([pad(f.durations, n_tokens) for f in items]),
    )


def _chunk_bounds(total: int, first: int, size: int) -> list[tuple[int, int]]:
    if first < 1 or size < 1:
        raise ValueError("chunk sizes must be positive")
    bounds, start, step = [], 0, first
    while start < total:
        end = min(total, start + step)
        bounds.append((start, end))
        start, step = end, size
    return bounds
