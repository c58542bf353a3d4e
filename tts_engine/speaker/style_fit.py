"""Voice matching on Kokoro: fit a 256-d style offset to a reference by gradient descent.

A Kokoro voice is a style pack (one 256-d vector per input length; values 0-127 condition the
decoder, i.e. timbre, 128-255 the prosody predictor). Matching looks for one offset ``delta``
added to every row of the nearest shipped pack so that our torch Kokoro, speaking a few fixed
sentences, sounds like the reference to two speaker encoders (GE2E and the VoiceFilter
d-vector), both differentiable from the waveform (``ge2e_torch``, ``dvector``).

Why gradients work here (and a black-box search on the int8 graph did not): our float torch
port is a smooth function of the style. The only non-differentiable step is the rounding of
the predicted durations, which depend on the prosody half only, so each fitting sentence's
durations are computed once from the starting style and held fixed: the decoder half gets
exact gradients, the prosody half gets gradients through the F0 and energy curves. (The
harmonic source's phase is a float32 running sum replayed from ONNX Runtime and is treated as
a constant; the decoder also reads F0 directly, which is where F0's gradient flows.)

What keeps the result a voice (``FitConfig``):

* start from the shipped pack nearest the reference (both encoders);
* optimise in units of the shipped styles' spread per dimension (whitened), with an L2 pull
  to the start, a penalty on the part of the style outside the span of the shipped rows
  (PCA, 99 % of their variance), and a hard radius per half (prosody tighter: it also moves
  durations at synthesis time, which the fit does not see);
* an intelligibility guard that needs no ASR: durations are fixed, so the output is frame
  aligned with the starting voice's; the *content drift* (1 - mean frame cosine of
  cepstral-mean-and-variance-normalised MFCCs, which carry phonetic content far more than
  speaker) is penalised above a free margin, and a step whose drift passes ``max_drift`` or
  whose level falls by more than ``max_level_drop_db`` (energy collapse) is undone, with
  the learning rate halved; three such back-offs end the fit.

The result to keep is chosen on the *fitting* half's objective only; the held-out half is
reported, never used for selection.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor

from tts_engine.models.kokoro.decoder import FrameMasks
from tts_engine.models.kokoro.model import STYLE_DIM, KokoroModel
from tts_engine.models.kokoro.prosody import align
from tts_engine.speaker import ge2e
from tts_engine.speaker.dvector import DVectorEncoder
from tts_engine.speaker.ge2e_torch import TorchGE2E, resample

SAMPLE_RATE = 24000
FULL_DIM = 2 * STYLE_DIM


@dataclass(frozen=True)
class FitConfig:
    lr: float = 0.12                 # Adam step, in shipped-style standard deviations
    radius: float = 1.5              # max RMS offset of the decoder half (std units)
    prosody_radius: float = 0.75     # max RMS offset of the prosody half (std units)
    weight_ge2e: float = 1.0
    weight_dvector: float = 1.0
    weight_pull: float = 0.02        # L2 pull to the start (per-dim mean square)
    weight_span: float = 0.05        # out-of-span energy (per-dim mean square)
    weight_drift: float = 4.0
    # Content drift is not free of speaker: two shipped voices speaking one sentence with the same
    # durations are 0.15-0.9 apart (0.4-0.55 between distinct female voices). A 0.10 margin held
    # every fit to a fraction of a voice change; 0.3 raised the held-out GE2E of four clips from
    # 0.693 to 0.716 on average, at two more misheard words of 83 on two of them (docs/BENCHMARKS.md).
    free_drift: float = 0.30         # content drift tolerated before it is penalised
    max_drift: float = 0.50          # a step above this is undone
    max_level_drop_db: float = 10.0  # a step this much quieter than the start is undone
    max_backoffs: int = 3


@dataclass(frozen=True)
class Budget:
    steps: int
    seconds: float


@dataclass
class FitStep:
    step: int
    loss: float
    ge2e_fit: float
    dvector_fit: float
    drift: float
    level_db: float
    elapsed_s: float
    accepted: bool
    ge2e_held: float | None = None     # the same output against the held-out half: reported only
    dvector_held: float | None = None


@dataclass
class FitResult:
    base_pack: str
    delta: np.ndarray                 # [256] offset added to every row of the base pack
    steps: int
    seconds: float
    stopped: str                      # steps | seconds | cancelled | guard
    history: list[FitStep] = field(default_factory=list)
    best_step: int = 0
    offset_rms: float = 0.0           # RMS of the offset in shipped-style standard deviations

    def summary(self) -> dict:
        return {"base_pack": self.base_pack, "steps": self.steps, "seconds": round(self.seconds, 2),
                "stopped": self.stopped, "best_step": self.best_step,
                "offset_rms_std": round(self.offset_rms, 3),
                "history": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(h).items()}
                            for h in self.history]}


# ---------------------------------------------------------------------------- the style prior


@dataclass
class StylePrior:
    """Per-dimension mean/std of the shipped styles and the span (PCA) of their rows."""

    mean: np.ndarray   # [256]
    std: np.ndarray    # [256]
    basis: np.ndarray  # [k, 256] orthonormal, whitened coordinates

    @classmethod
    def from_packs(cls, packs: dict[str, np.ndarray], kept: float = 0.99) -> StylePrior:
        rows = np.concatenate([np.asarray(p, dtype=np.float64) for p in packs.values()])
        mean, std = rows.mean(0), rows.std(0) + 1e-6
        _, sv, vt = np.linalg.svd((rows - mean) / std, full_matrices=False)
        share = np.cumsum(sv ** 2) / np.sum(sv ** 2)
        k = int(np.searchsorted(share, kept)) + 1
        return cls(mean.astype(np.float32), std.astype(np.float32), vt[:k].astype(np.float32))

    def out_of_span(self, style: Tensor) -> Tensor:
        """Mean square (per dimension) of the whitened style's part outside the shipped span."""
        dev = style.device
        z = (style - torch.from_numpy(self.mean).to(dev)) / torch.from_numpy(self.std).to(dev)
        basis = torch.from_numpy(self.basis).to(dev)
        inside = (z @ basis.T) @ basis
        return ((z - inside) ** 2).mean()


# ---------------------------------------------------------------------------- content drift


class ContentFeatures:
    """CMVN'd MFCCs (c1-c19) at 24 kHz, 12.5 ms hop: phonetic content, mostly speaker-free."""

    def __init__(self, n_mfcc: int = 20) -> None:
        self.window = torch.hann_window(1024)
        self.mel = torch.from_numpy(ge2e.mel_filterbank(SAMPLE_RATE, 1024, 40, 50.0, 7600.0))
        k = torch.arange(40, dtype=torch.float32)
        self.dct = torch.cos(math.pi / 40 * (k[None, :] + 0.5) * torch.arange(1, n_mfcc)[:, None].float())

    def __call__(self, audio: Tensor) -> Tensor:
        if self.window.device != audio.device:
            self.window, self.mel, self.dct = (t.to(audio.device) for t in (self.window, self.mel, self.dct))
        spec = torch.stft(audio, 1024, 300, window=self.window, center=True, return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2
        mfcc = self.dct @ torch.log(self.mel @ power + 1e-6)  # [19, frames]
        mfcc = mfcc - mfcc.mean(dim=1, keepdim=True)
        return mfcc / (mfcc.std(dim=1, keepdim=True) + 1e-5)

    @staticmethod
    def drift(a: Tensor, b: Tensor) -> Tensor:
        """1 - mean frame cosine of two aligned feature matrices."""
        n = min(a.shape[1], b.shape[1])
        return 1.0 - torch.nn.functional.cosine_similarity(a[:, :n], b[:, :n], dim=0).mean()


def level_db(audio: Tensor) -> Tensor:
    return 10 * torch.log10(torch.mean(audio * audio) + 1e-10)


# ---------------------------------------------------------------------------- the renderer


@dataclass
class FitSentence:
    """One fitting sentence with everything that does not depend on the style precomputed."""

    text: str
    row: int                 # the pack row its length selects
    tokens: Tensor           # [1, N]
    d_en: Tensor             # [1, N, 512] PL-BERT context (style-free)
    asr: Tensor              # [1, 512, F] aligned text-encoder features (style-free once durations are)
    durations: Tensor        # [1, N] fixed from the starting style
    start_audio: Tensor      # the starting voice's output (detached)
    start_content: Tensor
    start_level: float


class KokoroStyleRenderer:
    """Kokoro's acoustic + decoder stages with durations held fixed, differentiable in the style."""

    def __init__(self, model: KokoroModel) -> None:
        self.model = model.requires_grad_(False)
        self.content = ContentFeatures()

    @torch.no_grad()
    def sentence(self, text: str, ids: Sequence[int], style: np.ndarray) -> FitSentence:
        model = self.model
        tokens = torch.tensor([[0, *ids, 0]], dtype=torch.long, device=model.device)
        s = torch.from_numpy(np.ascontiguousarray(style, dtype=np.float32)).to(model.device)
        feats = model.acoustic(tokens, None, s[None], 1.0)
        d_en = model.bert_encoder(model.bert(tokens, None))
        sent = FitSentence(text, len(ids) - 1, tokens, d_en.clone(), feats.asr.clone(), feats.durations.clone(),
                           torch.zeros(1), torch.zeros(1), 0.0)
        audio = self.render(sent, s)
        sent.start_audio, sent.start_content = audio, self.content(audio)
        sent.start_level = float(level_db(audio))
        return sent

    def render(self, sent: FitSentence, style: Tensor) -> Tensor:
        """Audio [samples] of ``sent`` in ``style`` [256]; gradients flow to ``style``."""
        model = self.model
        total = int(sent.durations.sum())
        pros = style[STYLE_DIM:][None]
        d = model.predictor.text_encoder(sent.d_en, pros, None, None)
        en = align(d.transpose(1, 2), sent.durations, total)
        f0, energy = model.predictor.f0_energy(en, pros, None, None, None)
        with torch.no_grad():  # the source's phase is a float32 running sum: treated as constant
            source = model.decoder.generator.source_spectrum(f0.detach().float())
        # at_start=False skips the export's division of the first 20 samples by its window sum
        # (0.8 ms), whose masked-out zero division would turn every gradient into NaN.
        audio = model.decoder(sent.asr, f0, energy, style[:STYLE_DIM][None], source, FrameMasks(), None, False)
        return audio[0]


# ---------------------------------------------------------------------------- the fit


class SpeakerObjective:
    """Cosine similarities of an utterance to target GE2E and d-vector embeddings (torch)."""

    def __init__(self, ge2e_torch: TorchGE2E, dvector: DVectorEncoder) -> None:
        self.ge2e = ge2e_torch
        self.dvector = dvector

    def embeddings(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        return self.ge2e.embed(audio, SAMPLE_RATE), self.dvector.embed_torch(audio, SAMPLE_RATE)

    @staticmethod
    def similarities(embeddings: tuple[Tensor, Tensor], targets: tuple[np.ndarray, np.ndarray]) -> tuple[Tensor, Tensor]:
        return tuple(e @ torch.from_numpy(np.asarray(t, dtype=np.float32)).to(e.device)  # type: ignore[return-value]
                     for e, t in zip(embeddings, targets))


def fit_style(renderer: KokoroStyleRenderer, objective: SpeakerObjective, prior: StylePrior,
              base_pack: str, pack: np.ndarray, sentences: Sequence[FitSentence],
              targets: tuple[np.ndarray, np.ndarray], budget: Budget, config: FitConfig = FitConfig(),
              on_step: Callable[[FitStep, np.ndarray], bool] | None = None,
              held: tuple[np.ndarray, np.ndarray] | None = None) -> FitResult:
    """Fit an offset to ``pack`` (its sentences' rows) toward ``targets`` (GE2E, d-vector of the
    fitting half). ``on_step(step, delta)`` is called after every step; False cancels. ``held``
    (the held-out half's embeddings) is only scored for the progress report, never optimised."""
    started = time.monotonic()
    device = renderer.model.device
    std = torch.from_numpy(prior.std).to(device)
    z = torch.zeros(FULL_DIM, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([z], lr=config.lr)
    rows = [torch.from_numpy(np.ascontiguousarray(pack[s.row], dtype=np.float32)).to(device) for s in sentences]
    best = (-math.inf, np.zeros(FULL_DIM, np.float32), 0)
    history: list[FitStep] = []
    good = z.detach().clone()
    backoffs, stopped, step = 0, "steps", 0
    while step < budget.steps:
        if time.monotonic() - started >= budget.seconds:
            stopped = "seconds"
            break
        step += 1
        # Every sentence every step: scores of different sentences are not comparable, and the
        # best step is chosen on this sum.
        loss = config.weight_pull * (z * z).mean()
        speaker = torch.zeros(())
        sims_g, sims_d, drifts, levels, held_g, held_d = [], [], [], [], [], []
        for row, sent in zip(rows, sentences):
            style = row + z * std
            audio = renderer.render(sent, style)
            emb = objective.embeddings(audio)
            sim_g, sim_d = objective.similarities(emb, targets)
            if held is not None:
                h_g, h_d = objective.similarities(tuple(e.detach() for e in emb), held)
                held_g.append(float(h_g))
                held_d.append(float(h_d))
            drift = ContentFeatures.drift(renderer.content(audio), sent.start_content)
            speaker = speaker + (config.weight_ge2e * sim_g + config.weight_dvector * sim_d) / len(sentences)
            loss = loss + (config.weight_span * prior.out_of_span(style)
                           + config.weight_drift * torch.relu(drift - config.free_drift)) / len(sentences)
            sims_g.append(float(sim_g.detach()))
            sims_d.append(float(sim_d.detach()))
            drifts.append(float(drift.detach()))
            levels.append(float(level_db(audio.detach())) - sent.start_level)
        loss = loss - speaker
        drift, level = max(drifts), min(levels)
        ok = drift <= config.max_drift and level >= -config.max_level_drop_db
        history.append(FitStep(step, float(loss.detach()), float(np.mean(sims_g)), float(np.mean(sims_d)), drift, level,
                               time.monotonic() - started, ok, float(np.mean(held_g)) if held_g else None,
                               float(np.mean(held_d)) if held_d else None))
        if ok:
            good = z.detach().clone()
            if float(speaker.detach()) > best[0]:
                best = (float(speaker.detach()), z.detach().cpu().numpy().copy(), step)
        else:
            backoffs += 1
            with torch.no_grad():
                z.copy_(good)
            for group in optimizer.param_groups:
                group["lr"] *= 0.5
            if backoffs >= config.max_backoffs:
                stopped = "guard"
                break
        optimizer.zero_grad()
        if ok:
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                _project(z, config.radius, config.prosody_radius)
        if on_step is not None and not on_step(history[-1], (best[1] * prior.std).astype(np.float32)):
            stopped = "cancelled"
            break
    else:
        stopped = "steps"
    delta = (best[1] * prior.std).astype(np.float32)
    return FitResult(base_pack, delta, step, time.monotonic() - started, stopped, history, best[2],
                     float(np.sqrt(np.mean(best[1] ** 2))))


def _project(z: Tensor, radius: float, prosody_radius: float) -> None:
    """Keep each half's RMS offset within its radius (in std units)."""
    for part, r in ((z[:STYLE_DIM], radius), (z[STYLE_DIM:], prosody_radius)):
        rms = torch.sqrt(torch.mean(part * part))
        if rms > r:
            part.mul_(r / rms)


def embed_both(ge2e_encoder: ge2e.SpeakerEncoder, dvector: DVectorEncoder, audio: np.ndarray,
               rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(GE2E, d-vector) unit embeddings of a clip (numpy; the references' path)."""
    return ge2e_encoder.embed(audio, rate), dvector.embed(audio, rate)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return ge2e.similarity(a, b)


__all__ = ["Budget", "FitConfig", "FitResult", "FitStep", "KokoroStyleRenderer", "SpeakerObjective",
           "StylePrior", "ContentFeatures", "fit_style", "embed_both", "cosine", "resample"]
