"""Voice matching (issue 13), engine side: differentiable encoders, the fit's guard rails, the
conditioning that serves a fitted style, the registration job's bookkeeping.

The Kokoro-backed tests use one short sentence and one or two steps: they check that gradients
reach both halves of the style and that the machinery runs, not how good a fit is (that is
bench/cloning.py's job, on real recordings).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np
import pytest
import torch

from tests.audio_fixtures import SR, speaker_clip, speaker_encoder
from tts_engine.speaker import ge2e
from tts_engine.speaker.dvector import DVectorEncoder, default_model_path
from tts_engine.speaker.ge2e_torch import TorchGE2E, resample
from tts_engine.speaker.matching import METHODS, MatchReport, split_reference
from tts_engine.speaker.references import AdaptationConditioning, StyleConditioning
from tts_engine.speaker.style_fit import (
    Budget, ContentFeatures, FitConfig, FitSentence, SpeakerObjective, StylePrior, fit_style,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@lru_cache(maxsize=1)
def dvector() -> DVectorEncoder:
    return DVectorEncoder()


@lru_cache(maxsize=1)
def clip() -> np.ndarray:
    return np.concatenate([speaker_clip("child", 0), speaker_clip("child", 1)])


# ---------------------------------------------------------------------- speaker encoders


def test_torch_ge2e_equals_the_numpy_front_end_and_has_gradients():
    encoder = speaker_encoder()
    audio = clip()
    reference = encoder.embed(audio, SR)
    x = torch.from_numpy(audio).requires_grad_(True)
    emb = TorchGE2E(encoder).embed(x, SR)
    # soxr (numpy path) and FFT resampling (torch path) differ slightly at 22.05 -> 16 kHz.
    assert ge2e.similarity(reference, emb.detach().numpy()) > 0.999
    emb.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0


def test_speech_mask_keeps_what_trim_long_silences_keeps():
    audio = np.concatenate([np.zeros(16000, np.float32), speaker_clip("deep", 0)[:32000],
                            np.zeros(16000, np.float32)]).astype(np.float32)
    mask = ge2e.speech_mask(audio)
    assert mask is not None and mask.sum() < len(audio)
    np.testing.assert_array_equal(audio[mask], ge2e.trim_long_silences(audio))


def test_dvector_torch_port_matches_onnxruntime():
    import onnxruntime as ort

    enc = dvector()
    x = resample(torch.from_numpy(clip()), SR, 16000)
    windows = enc.windows(enc.log_mel(x))
    session = ort.InferenceSession(str(default_model_path()), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"mel_window": windows.numpy()})[0]
    ours = enc.net(windows).detach().numpy()
    cos = [ge2e.similarity(a, b) for a, b in zip(theirs, ours)]
    assert min(cos) > 0.998, cos  # ORT quantizes activations to int8 on the fly; float here


def test_dvector_embedding_is_unit_and_differentiable():
    x = torch.from_numpy(clip()).requires_grad_(True)
    emb = dvector().embed_torch(x, SR)
    assert float(torch.linalg.vector_norm(emb)) == pytest.approx(1.0, abs=1e-5)
    emb[0].backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0
    np.testing.assert_allclose(dvector().embed(clip(), SR), emb.detach().numpy(), atol=1e-5)


def test_missing_dvector_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="d-vector model not found"):
        DVectorEncoder(tmp_path / "nope.onnx")


# ---------------------------------------------------------------------- the fit's rails (no Kokoro)


class _ToyRenderer:
    """A smooth stand-in for Kokoro: a two-tone signal whose pitch and level follow the style."""

    model = type("Model", (), {"device": torch.device("cpu")})()

    def __init__(self) -> None:
        self.content = ContentFeatures()
        self.t = torch.arange(SR * 2 // 1, dtype=torch.float32) / 24000

    def render(self, sent, style):
        f = 140 + 20 * torch.tanh(style[:8].mean())
        return 0.1 * (1 + 0.5 * torch.tanh(style[128:136].mean())) * torch.sin(2 * np.pi * f * self.t)

    def sentence(self):
        audio = self.render(None, torch.zeros(256))
        return FitSentence("toy", 0, torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.zeros(1), audio,
                           self.content(audio), float(10 * torch.log10(torch.mean(audio ** 2))))


class _ToyObjective:
    def embeddings(self, audio):
        spec = torch.fft.rfft(audio)[:2000].abs()
        e = spec / torch.linalg.vector_norm(spec)
        return e, e

    similarities = staticmethod(SpeakerObjective.similarities)


def _toy_fit(config: FitConfig, steps: int = 3, on_step=None):
    renderer = _ToyRenderer()
    sent = renderer.sentence()
    target = _ToyObjective().embeddings(renderer.render(None, torch.full((256,), 0.5)))
    target = tuple(t.detach().numpy() for t in target)
    pack = np.zeros((510, 256), np.float32)
    prior = StylePrior(np.zeros(256, np.float32), np.ones(256, np.float32), np.eye(256, dtype=np.float32)[:8])
    return fit_style(renderer, _ToyObjective(), prior, "toy", pack, [sent], target, Budget(steps, 3600), config,
                     on_step, held=target)


def test_fit_stays_within_its_radius_and_reports_held_out_scores():
    result = _toy_fit(FitConfig(lr=0.5, radius=0.2, prosody_radius=0.1), steps=4)
    assert result.steps == 4 and result.stopped == "steps" and len(result.history) == 4
    z = result.delta  # std = 1 here
    assert np.sqrt(np.mean(z[:128] ** 2)) <= 0.2 + 1e-5 and np.sqrt(np.mean(z[128:] ** 2)) <= 0.1 + 1e-5
    assert all(h.ge2e_held is not None for h in result.history)


def test_guard_backs_off_then_stops_on_content_drift():
    result = _toy_fit(FitConfig(max_drift=-1.0, max_backoffs=2), steps=10)  # every step "drifts"
    assert result.stopped == "guard" and result.steps == 2
    assert not any(h.accepted for h in result.history)
    assert not result.delta.any()  # nothing accepted: the start is kept


def test_a_cancelled_fit_stops_at_once():
    calls = []
    result = _toy_fit(FitConfig(), steps=10, on_step=lambda step, delta: calls.append(step) or False)
    assert result.stopped == "cancelled" and len(calls) == 1


def test_style_prior_span():
    from tts_engine.models.kokoro_family import voice_packs

    packs = voice_packs()
    prior = StylePrior.from_packs(packs)
    row = torch.from_numpy(packs["jf_alpha"][40])
    off = row + torch.from_numpy(prior.std) * torch.randn(256, generator=torch.Generator().manual_seed(0))
    assert float(prior.out_of_span(row)) < 0.05 < float(prior.out_of_span(off))


# ---------------------------------------------------------------------- Kokoro: gradients and one step


@pytest.fixture(scope="module")
def kokoro_parts():
    from tts_engine.models.kokoro.assembly import assemble_kokoro_onnx
    from tts_engine.models.kokoro.model import KokoroModel
    from tts_engine.models.kokoro_family import kokoro_vocab, voice_packs
    from tts_engine.settings import Settings
    from tts_engine.speaker.style_fit import KokoroStyleRenderer
    from tts_engine.text.kokoro_phonemizer import KokoroPhonemizer

    model = KokoroModel.from_onnx(assemble_kokoro_onnx(Settings().model_cache_dir))
    ids = KokoroPhonemizer(kokoro_vocab()).phonemize("Call me soon.", "en").ids
    return KokoroStyleRenderer(model), ids, voice_packs()["jf_alpha"]


def test_renderer_reproduces_inference_and_passes_gradients_to_both_halves(kokoro_parts):
    renderer, ids, pack = kokoro_parts
    sent = renderer.sentence("Call me soon.", ids, pack[len(ids) - 1])
    model = renderer.model
    style = torch.from_numpy(pack[len(ids) - 1].copy())
    expected = model.decode(model.acoustic(sent.tokens, None, style[None], 1.0))[0]
    # Fixed durations = the predicted ones at the start; only the first 20 samples may differ
    # (the export's window-sum correction, skipped for finite gradients).
    np.testing.assert_allclose(sent.start_audio[20:].numpy(), expected[20:].numpy(), atol=1e-4)
    style = style.requires_grad_(True)
    audio = renderer.render(sent, style)
    (audio ** 2).mean().backward()
    grad = style.grad
    assert torch.isfinite(grad).all()
    assert grad[:128].abs().sum() > 0 and grad[128:].abs().sum() > 0  # timbre and prosody halves


def test_one_real_fit_step(kokoro_parts):
    renderer, ids, pack = kokoro_parts
    sent = renderer.sentence("Call me soon.", ids, pack[len(ids) - 1])
    target_audio = np.concatenate([speaker_clip("deep", 0), speaker_clip("deep", 1)])
    target = (speaker_encoder().embed(target_audio, SR), dvector().embed(target_audio, SR))
    objective = SpeakerObjective(TorchGE2E(speaker_encoder()), dvector())
    from tts_engine.models.kokoro_family import voice_packs

    result = fit_style(renderer, objective, StylePrior.from_packs(voice_packs()), "jf_alpha", pack, [sent], target,
                       Budget(2, 600), FitConfig())
    assert result.steps == 2 and len(result.history) == 2
    assert result.history[0].drift == pytest.approx(0.0, abs=2e-3)  # step 1 renders the start itself
    assert all(np.isfinite([h.loss, h.ge2e_fit, h.dvector_fit]).all() for h in result.history)
    assert result.summary()["base_pack"] == "jf_alpha"


# ---------------------------------------------------------------------- split, report, conditioning


def test_split_reference_cuts_in_the_pause():
    tone = (0.3 * np.sin(np.arange(24000) * 0.05)).astype(np.float32)
    audio = np.concatenate([tone, tone, np.zeros(4800, np.float32), tone])  # pause at 2.0-2.2 s
    a, b = split_reference(audio, 24000)
    assert 48000 <= len(a) <= 48000 + 4800 and len(a) + len(b) == len(audio)


def _report(method: str = "kokoro-style+dsp") -> MatchReport:
    return MatchReport(method, "kokoro/jf_alpha", {"f0_median_hz": 200.0}, {
        "start": {"ge2e": 0.5, "dvector": 0.4}, "kokoro-style": {"ge2e": 0.7, "dvector": 0.6},
        "kokoro-style+dsp": {"ge2e": 0.72, "dvector": 0.61}}, {"ge2e": 0.85, "dvector": 0.9},
        "jf_alpha", [0.01] * 256, {"steps": 2, "history": [{"step": 1}]}, 3.0, (2.0, 2.1))


def test_report_round_trip_and_public_view():
    report = _report()
    again = MatchReport.from_json(report.to_json())
    assert again == report
    public = report.public()
    assert public["method_text"] == METHODS["kokoro-style+dsp"] and "not identity cloning" in public["method_text"]
    assert public["heldout_similarity"] == {"ge2e": 0.72, "dvector": 0.61}
    assert public["same_speaker_ceiling"]["ge2e"] == 0.85 and "history" not in public["fit"]
    pack = report.pack()
    from tts_engine.models.kokoro_family import voice_packs

    np.testing.assert_allclose(pack - voice_packs()["jf_alpha"], 0.01, atol=1e-6)
    assert isinstance(report.conditioning().post, AdaptationConditioning)
    assert _report("kokoro-style").conditioning().post is None
    assert isinstance(_report("dsp").conditioning(), AdaptationConditioning)


def test_style_conditioning_replaces_kokoro_styles_by_length(engine):
    from tts_engine.engine import SynthesisOptions
    from tts_engine.models.kokoro_family import KokoroControl

    pack = np.random.default_rng(0).normal(size=(510, 256)).astype(np.float32)
    cond = StyleConditioning(pack)
    prepared = engine.prepare("One two three. Four.", SynthesisOptions(voice="kokoro/jf_alpha", language="en"))
    out = cond.condition(prepared)
    for sentence, control in zip(out.sentences, out.controls):
        assert isinstance(control, KokoroControl)
        np.testing.assert_allclose(control.style, pack[len(sentence.ids) - 1])
    assert out.control_identity["style"] == "pack:" + cond.pack_digest()
    assert StyleConditioning(pack * 2).identity() != cond.identity()
    # A Piper voice has no style: unchanged.
    piper = engine.prepare("Hello there.", SynthesisOptions())
    assert cond.condition(piper) is piper
    # The fitted style reaches the audio.
    plain = engine.render_batch(prepared.voice.id, prepared.items()[:1])[0].audio
    styled = engine.render_batch(out.voice.id, out.items()[:1])[0].audio
    assert not np.allclose(plain[: min(len(plain), len(styled))], styled[: min(len(plain), len(styled))])
    assert replace(prepared).controls[0].style is None


# ---------------------------------------------------------------------- the job's bookkeeping


def test_style_pack_is_persisted_and_deleted_with_the_voice(tmp_path):
    from storage import open_store
    from storage.voices import VoiceRegistry
    from tts_engine.settings import Settings

    registry = VoiceRegistry(open_store(Settings(store=f"file://{tmp_path}")), "acme")
    record = registry.create("v", "en", None, b"RIFF....", "en_US-joe-medium")
    pack = np.arange(510 * 256, dtype=np.float32).reshape(510, 256)
    record.style_key = registry.save_style_pack(record, pack)
    assert record.style_key.startswith("tenants/acme/voices/")
    np.testing.assert_array_equal(registry.style_pack(record), pack)
    record.base_voice = "kokoro/jf_alpha"
    assert record.public()["languages"] == ["en", "zh", "ja"] and "style_key" not in record.public()
    registry.save(record)
    registry.delete(record.voice_id)
    assert not registry.store.exists(record.style_key)


def test_interrupted_job_marks_the_voice_failed(tmp_path):
    from deployments.speaker_cache import _interrupted
    from storage import open_store
    from storage.voices import VoiceRegistry
    from tts_engine.settings import Settings

    registry = VoiceRegistry(open_store(Settings(store=f"file://{tmp_path}")))
    record = registry.create("v", "en", None, b"RIFF....", "en_US-joe-medium")
    assert _interrupted(registry, record.voice_id) == "failed"
    assert "interrupted" in registry.get(record.voice_id).reason
    registry.delete(record.voice_id)
    assert _interrupted(registry, record.voice_id) == "deleted"


def test_matching_budget_settings_are_validated():
    from pydantic import ValidationError

    from tts_engine.settings import Settings

    with pytest.raises(ValidationError, match="matching_steps"):
        Settings(matching_steps=0)
    with pytest.raises(ValidationError, match="matching_on_the_fly"):
        Settings(matching_on_the_fly="sometimes")


# ---------------------------------------------------------------------- the ingress's choice


class _Remote:
    def __init__(self, fn):
        self.fn = fn

    async def remote(self, *args):
        return self.fn(*args)


class _Cache:
    def __init__(self, match):
        self.match = _Remote(match)
        self.analyze = _Remote(lambda data, tenant: type("Ref", (), {"profile": {"f0_median_hz": 120.0}})())


def _services(match, on_the_fly="kokoro_voices"):
    from tts_engine.settings import Settings
    from tts_engine.voices import VoiceCatalog

    settings = Settings(matching_on_the_fly=on_the_fly)
    return type("S", (), {"settings": settings, "voices": VoiceCatalog(settings), "speaker_cache": _Cache(match)})()


def _run(coro):
    import asyncio

    return asyncio.run(coro)


def test_kokoro_voice_with_a_reference_gets_the_fitted_style():
    from serve_app.matching import post_filter, reference_conditioning

    services = _services(lambda data, tenant, methods: _report("kokoro-style"))
    voice, cond = _run(reference_conditioning(services, b"x", "kokoro/jf_nezumi", "auto", "Hello.", "t"))
    assert voice == "kokoro/jf_alpha" and isinstance(cond, StyleConditioning) and post_filter(cond) is None
    # Chinese text without a voice: its default voice is a Kokoro voice, so it is matched too.
    voice, cond = _run(reference_conditioning(services, b"x", None, "auto", "你好。", "t"))
    assert isinstance(cond, StyleConditioning)


def test_piper_voice_with_a_reference_keeps_dsp():
    from serve_app.matching import reference_conditioning

    services = _services(lambda *a: pytest.fail("no fit for a Piper voice"))
    voice, cond = _run(reference_conditioning(services, b"x", None, "auto", "Hello there.", "t"))
    assert voice is None and isinstance(cond, AdaptationConditioning)


def test_a_failed_fit_falls_back_to_dsp_but_request_errors_stay_errors():
    from serve_app.matching import reference_conditioning
    from tts_engine.errors import InvalidInput

    def broken(*args):
        raise RuntimeError("the fit blew up")

    voice, cond = _run(reference_conditioning(_services(broken), b"x", "kokoro/jf_alpha", "auto", "Hi.", "t"))
    assert voice == "kokoro/jf_alpha" and isinstance(cond, AdaptationConditioning)

    def bad_clip(*args):
        raise InvalidInput("reference audio is silent", field="reference_audio")

    with pytest.raises(InvalidInput):
        _run(reference_conditioning(_services(bad_clip), b"x", "kokoro/jf_alpha", "auto", "Hi.", "t"))


def test_registered_voice_conditioning_from_its_stored_pack(tmp_path):
    from serve_app.matching import registered_conditioning
    from storage import open_store
    from storage.voices import VoiceRegistry
    from tts_engine.settings import Settings

    registry = VoiceRegistry(open_store(Settings(store=f"file://{tmp_path}")))
    record = registry.create("v", "en", None, b"RIFF....", "en_US-joe-medium")
    voice, cond = _run(registered_conditioning(registry, record))  # DSP-only record (no fit)
    assert voice == "en_US-joe-medium" and isinstance(cond, AdaptationConditioning)
    report = _report("kokoro-style+dsp")
    record.style_key = registry.save_style_pack(record, report.pack())
    record.base_voice, record.matching, record.profile = report.base_voice, report.public(), report.profile
    voice, cond = _run(registered_conditioning(registry, record))
    assert voice == "kokoro/jf_alpha" and isinstance(cond, StyleConditioning)
    assert isinstance(cond.post, AdaptationConditioning)
    np.testing.assert_array_equal(cond.pack, report.pack())
