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
    bf16 = TTSEngine(Settings(device="cpu", model_families=["piper"], cpu_bf16_flow=False))
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


@pytest.mark.skipif(not cpu_has_bf16(), reason="no native bfloat16 on this CPU")
def test_bf16_flow_is_the_default_keeps_lengths_and_stays_close(engine):
    """The flow's WaveNets in bf16 (the flow's signal float32): same durations, close audio, own keys."""
    both = TTSEngine(Settings(device="cpu", model_families=["piper"]))    # the defaults
    vocoder_only = TTSEngine(Settings(device="cpu", model_families=["piper"], cpu_bf16_flow=False))
    voice = engine.settings.default_voice
    coupling = both.model(voice).vits.flow.flows[0]
    assert coupling.enc.in_layers[0].weight.dtype == torch.bfloat16
    assert vocoder_only.model(voice).vits.flow.flows[0].pre.weight.dtype == torch.float32
    assert len({both.model_version(voice), vocoder_only.model_version(voice), engine.model_version(voice)}) == 3
    for text in (TEXT, "Please call Stella and ask her to bring these things with her from the store."):
        ref = vocoder_only.synthesize(text, seed=3).audio
        got = both.synthesize(text, seed=3).audio
        assert got.dtype == np.float32 and got.shape == ref.shape   # the flow comes after the durations
        assert logmel_distance(got, ref) < 1.0                      # measured 0.3 dB
        err = got - ref
        assert 20 * np.log10(np.sqrt(np.mean(ref**2)) / np.sqrt(np.mean(err**2))) > 12   # measured median 26 dB


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


# --------------------------------------------------------------------------- shape buckets

def test_bucketed_widths_cover_and_are_few():
    from tts_engine.models.shape_buckets import bucketed

    widths = range(1, 3000)
    sizes = {bucketed(w, 8) for w in widths}
    for w in widths:
        b = bucketed(w, 8)
        assert w <= b <= w * 9 / 8 + 1      # at most 1/8 more work
        assert bucketed(b, 8) == b           # a bucket is its own bucket
    assert len([s for s in sizes if 512 <= s < 1024]) == 8   # 8 sizes per octave
    assert len(sizes) < 100
    assert all(bucketed(w, 0) == w for w in widths)           # 0: exact widths


def test_bucketed_widths_give_the_audio_of_exact_widths(engine):
    """Padding tokens and frames to a bucket is masked: sync, batch and stream audio are the exact
    widths' (float summation order aside), for every length, with random noise drawn alike."""
    from tts_engine.models.protocol import StreamChunking

    model = engine.model(engine.settings.default_voice)
    assert model.vits.width_buckets == 8   # the default on CPU
    texts = ["Ok.", "Hello there, friend.", "The quick brown fox jumps over the lazy dog, twice.",
             "Peter Piper picked a peck of pickled peppers; how many pickled peppers did he pick?"]
    items = [item for t in texts for item in engine.prepare(t, SynthesisOptions(seed=7)).items()]
    chunking = StreamChunking(0.2, 0.8, 0.2)

    def renders():
        return ([model.render_batch([item])[0] for item in items], model.render_batch(items),
                [np.concatenate([r.audio for r in model.render_stream(item, chunking)]) for item in items])

    bucketed_runs = renders()
    model.vits.width_buckets = 0
    try:
        exact_runs = renders()
    finally:
        model.vits.width_buckets = 8
    for got, want in zip(bucketed_runs[0] + bucketed_runs[1], exact_runs[0] + exact_runs[1]):
        assert got.audio.shape == want.audio.shape
        assert got.durations == want.durations
        assert np.abs(got.audio - want.audio).max() <= 1e-4
    for got, want in zip(bucketed_runs[2], exact_runs[2]):
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-4


@pytest.mark.parametrize("family, expected", [("piper", "256"), ("kokoro", "16")])
def test_primitive_cache_is_sized_by_the_first_family_a_process_loads(family, expected):
    """Piper's bucketed widths reuse built primitives; Kokoro's pieces cannot, so a Kokoro replica
    keeps oneDNN's cache small (each primitive's buffers grow with its width). In a child process:
    oneDNN reads the capacity once per process."""
    import os
    import subprocess
    import sys

    code = ("import os\nfrom tts_engine.engine import TTSEngine\nfrom tts_engine.settings import Settings\n"
            f"e = TTSEngine(Settings(device='cpu', model_families=['{family}']))\n"
            "e.model(e.voices.list()[0].id)\n"
            "print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])\n")
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == expected
