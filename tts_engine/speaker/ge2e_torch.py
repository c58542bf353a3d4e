"""GE2E in torch end to end: differentiable from the waveform to the embedding.

``ge2e.py`` computes the mel spectrogram in numpy (the service's embeddings); voice matching
needs gradients of the similarity with respect to the synthesized waveform, so this module
repeats the same front end with torch ops and shares the LSTM weights:

* resampling to 16 kHz by FFT (band-limited, differentiable);
* volume raised to -30 dBFS, never lowered (the gain is part of the graph);
* long silences removed with the *same* energy VAD as ``ge2e.trim_long_silences``: the
  decision is made on the detached signal (a VAD has no useful gradient), the kept samples
  are gathered from the differentiable one;
* power mel (centred 400-point periodic Hann STFT, hop 160, 40 Slaney mels), the same partial
  utterances, mean of unit partial embeddings, re-normalised.

On the same clip it reproduces ``SpeakerEncoder.embed`` to float rounding (see tests).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from tts_engine.speaker import ge2e


def resample(audio: Tensor, rate_in: int, rate_out: int) -> Tensor:
    """FFT resampling of a 1-D signal (scipy.signal.resample's method), differentiable."""
    if rate_in == rate_out:
        return audio
    n_in = audio.shape[-1]
    n_out = int(round(n_in * rate_out / rate_in))
    spectrum = torch.fft.rfft(audio)
    keep = min(spectrum.shape[-1], n_out // 2 + 1)
    out = torch.fft.irfft(spectrum[..., :keep], n=n_out)
    return out * (n_out / n_in)


def normalize_volume(wav: Tensor, target_dbfs: float = ge2e.NORM_TARGET_DBFS) -> Tensor:
    rms = torch.sqrt(torch.mean(wav * wav) + 1e-12)
    target = 10 ** (target_dbfs / 20)
    return wav * torch.clamp(target / rms, min=1.0)


class TorchGE2E:
    """Differentiable GE2E embeddings with the weights of a :class:`ge2e.SpeakerEncoder`."""

    def __init__(self, encoder: ge2e.SpeakerEncoder | None = None) -> None:
        self.encoder = encoder or ge2e.SpeakerEncoder()
        self.net = self.encoder.model
        for p in self.net.parameters():
            p.requires_grad_(False)
        device = next(self.net.parameters()).device
        self.mel_basis = torch.from_numpy(ge2e.mel_filterbank()).to(device)
        self.window = torch.hann_window(ge2e.N_FFT, periodic=True, dtype=torch.float32, device=device)

    def mel(self, wav: Tensor) -> Tensor:
        """Power mel [frames, 40] of 16 kHz audio (the numpy front end's frames)."""
        spec = torch.stft(wav, ge2e.N_FFT, ge2e.HOP, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2
        return (self.mel_basis @ power).transpose(0, 1)

    def embed(self, audio: Tensor, sample_rate: int) -> Tensor:
        """Unit GE2E embedding [256] of one utterance; gradients flow back to ``audio``."""
        wav = normalize_volume(resample(audio.float().to(self.mel_basis.device), sample_rate, ge2e.SAMPLE_RATE))
        keep = ge2e.speech_mask(wav.detach().cpu().numpy())
        if keep is not None:
            wav = wav[torch.from_numpy(np.flatnonzero(keep)).to(wav.device)]
        slices = ge2e.partial_slices(wav.shape[-1])
        need = slices[-1].stop * ge2e.HOP
        if need >= wav.shape[-1]:
            wav = torch.nn.functional.pad(wav, (0, need - wav.shape[-1] + 1))
        mel = self.mel(wav)
        partials = torch.stack([mel[s] for s in slices])
        emb = self.net(partials).mean(dim=0)
        return emb / torch.linalg.vector_norm(emb).clamp_min(1e-12)
