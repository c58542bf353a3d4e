"""The bfloat16 speed lever (on by default where the CPU has native bf16): its numerics bounded,
float32 one setting away, and the two never sharing cache keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tts_engine.engine import SynthesisOptions, TTSEngine
from tts_engine.models.fastpath import cpu_has_bf16
from tts_engine.settings import Settings
from tests.test_kokoro_model import logmel_distance

TEXT = "The quick brown fox jumps over the lazy dog near the quiet river bank."


@pytest.mark.skipif(not cpu_has_bf16(), reason="no native bfloat16 on this CPU")
def test_bf16_vocoder_stays_close_to_float32_and_has_its_own_cache_identity(engine):
    bf16 = TTSEngine(Settings(device="cpu", model_families=["piper"]))    # the default
    voice = engine.settings.default_voice
    assert bf16.model(voice).vits.dec.conv_pre.weight.dtype == torch.bfloat16
    assert engine.model(voice).vits.dec.conv_pre.weight.dtype == torch.float32  # cpu_bf16_vocoder=False
    assert engine.model_version(voice).startswith("vits-torch-1:")  # float32 keys as before the default changed
    ref = engine.synthesize(TEXT, seed=3, noise_scale=0.0, noise_w=0.0).audio
    got = bf16.synthesize(TEXT, seed=3, noise_scale=0.0, noise_w=0.0).audio
    assert got.dtype == np.float32 and got.shape == ref.shape
    err = got - ref
    snr_db = 20 * np.log10(np.sqrt(np.mean(ref**2)) / np.sqrt(np.mean(err**2)))
    assert snr_db > 30, snr_db             # measured ~39 dB
    assert np.abs(err).max() < 0.05        # measured ~0.008
    assert bf16.model_version(voice) != engine.model_version(voice)
    # A padded batch (several sentences at once: TTSEngine.synthesize, the CLI, a GPU replica) on the
    # bf16 vocoder: its frame mask once came in float32 and the first convolution refused it.
    two = "The storm passed at night. In the morning, the villagers went down to the river."
    prepared = bf16.prepare(two, SynthesisOptions(seed=3, noise_scale=0.0, noise_w=0.0))
    batch = bf16.render_batch(voice, prepared.items())
    singles = [bf16.render_batch(voice, [item])[0] for item in prepared.items()]
    assert [len(b.audio) for b in batch] == [len(s.audio) for s in singles]
    for b, s in zip(batch, singles):
        noise = np.sqrt(np.mean((b.audio - s.audio) ** 2)) / np.sqrt(np.mean(s.audio ** 2))
        assert 20 * np.log10(1 / max(noise, 1e-12)) > 30   # bf16 rounding differs by batch shape


def test_kokoro_bf16_decoder_is_the_default_with_its_own_cache_identity():
    plain = TTSEngine(Settings(device="cpu", model_families=["kokoro"], cpu_bf16_vocoder=False))
    bf16 = TTSEngine(Settings(device="cpu", model_families=["kokoro"]))
    voice = "kokoro/jf_alpha"
    assert bf16.model_version(voice) != plain.model_version(voice)
    if not cpu_has_bf16():
        pytest.skip("no native bfloat16 on this CPU: the decoder stays float32")
    assert bf16.model(voice).model.decoder_dtype() == torch.bfloat16
    assert plain.model(voice).model.decoder_dtype() == torch.float32
    text = "今日はいい天気ですね。"
    ref = plain.synthesize(text, voice=voice, language="ja", seed=1).audio
    got = bf16.synthesize(text, voice=voice, language="ja", seed=1).audio
    assert got.dtype == np.float32 and got.shape == ref.shape   # same durations: the acoustic stage is float32
    assert np.corrcoef(got, ref)[0, 1] > 0.9
    # the output stage (conv_post, iSTFT) stays float32: ~0.4 dB instead of ~1.1 dB all-bf16
    assert bf16.model(voice).model.decoder.generator.conv_post.weight.dtype == torch.float32
    assert logmel_distance(got, ref) <= 0.6
