"""GE2E speaker encoder (tts_engine.speaker.ge2e): front end, weights, embedding behaviour."""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import pytest
import soxr

from tests.audio_fixtures import speaker_encoder as encoder, SR, synth_reference_clips
from tts_engine.speaker import ge2e as speaker
from tts_engine.errors import InvalidInput
from tts_engine.speaker.ge2e import similarity


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@lru_cache(maxsize=1)
def embeddings() -> dict[str, list[np.ndarray]]:
    enc = encoder()
    return {name: [enc.embed(c, SR) for c in clips] for name, clips in synth_reference_clips().items()}


# --- front end: what resemblyzer's hparams imply ------------------------------------------
def test_frame_geometry_matches_resemblyzer_hparams():
    assert (speaker.N_FFT, speaker.HOP, speaker.N_MELS) == (400, 160, 40)  # 25 ms / 10 ms @ 16 kHz
    mel = speaker.mel_spectrogram(np.zeros(16000, dtype=np.float32))
    assert mel.shape == (101, 40)  # centred frames: 1 + 16000 // 160
    assert speaker.mel_spectrogram(np.zeros(16160, dtype=np.float32)).shape == (102, 40)
    # partials: 160 frames every round(16000 / 1.3 / 160) = 77 frames
    sl = speaker.partial_slices(3 * 16000)
    assert [(s.start, s.stop) for s in sl] == [(0, 160), (77, 237), (154, 314)]
    assert len(speaker.partial_slices(8000)) == 1  # shorter than one partial: still one


def test_slaney_mel_filterbank():
    assert speaker.hz_to_mel(1000.0) == pytest.approx(15.0)
    assert speaker.hz_to_mel(500.0) == pytest.approx(7.5)  # linear part: f / (200/3)
    assert speaker.hz_to_mel(8000.0) == pytest.approx(15 + 27 * np.log(8) / np.log(6.4))
    f = np.array([0.0, 300.0, 999.0, 1000.0, 2500.0, 7999.0])
    np.testing.assert_allclose(speaker.mel_to_hz(speaker.hz_to_mel(f)), f, atol=1e-6)
    fb = speaker.mel_filterbank()
    assert fb.shape == (40, 201) and fb.min() >= 0
    freqs = np.linspace(0, 8000, 201)
    centres = speaker.mel_to_hz(np.linspace(0, speaker.hz_to_mel(8000.0), 42))[1:-1]
    assert np.all(np.diff(freqs[np.argmax(fb, axis=1)]) >= 0)  # filters in ascending order
    np.testing.assert_allclose(freqs[np.argmax(fb, axis=1)], centres, atol=40.0)  # peak within a bin
    # Slaney norm: every triangle has unit area in Hz (wide ones; narrow ones are under-sampled)
    area = fb.sum(axis=1) * (freqs[1] - freqs[0])
    np.testing.assert_allclose(area[10:], 1.0, rtol=0.05)


def test_tone_lands_in_the_right_mel_band():
    t = np.arange(16000) / 16000
    mel = speaker.mel_spectrogram(0.5 * np.sin(2 * np.pi * 1000 * t))
    centres = speaker.mel_to_hz(np.linspace(0, speaker.hz_to_mel(8000.0), 42))[1:-1]
    assert abs(centres[int(np.argmax(mel[50]))] - 1000) < 80
    # power spectrum: doubling the amplitude quadruples the mel energies
    mel2 = speaker.mel_spectrogram(1.0 * np.sin(2 * np.pi * 1000 * t))
    assert mel2[50].sum() / mel[50].sum() == pytest.approx(4.0, rel=1e-4)


def test_vad_trims_long_silence_only():
    rng = np.random.default_rng(0)
    burst = (0.1 * rng.standard_normal(8000)).astype(np.float32)  # 0.5 s
    gap_short = np.zeros(1600, dtype=np.float32)  # 0.1 s: kept
    gap_long = np.zeros(32000, dtype=np.float32)  # 2 s: cut to a few windows
    wav = np.concatenate([burst, gap_short, burst, gap_long, burst])
    out = speaker.trim_long_silences(wav)
    assert 3 * 8000 + 1600 <= len(out) < len(wav) - 24000


# --- embeddings -----------------------------------------------------------------------------
def test_embedding_shape_norm_and_determinism():
    clip = synth_reference_clips()["joe"][0]
    enc = encoder()
    e1 = enc.embed(clip, SR)
    e2 = enc.embed(clip.copy(), SR)
    assert e1.shape == (256,) and e1.dtype == np.float32
    assert np.linalg.norm(e1) == pytest.approx(1.0, abs=1e-5)
    assert np.all(e1 >= 0)  # ReLU before the norm
    np.testing.assert_array_equal(e1, e2)
    assert similarity(e1, e2) == pytest.approx(1.0)


def test_same_voice_scores_higher_than_other_voices():
    emb = embeddings()
    names = list(emb)
    lines = []
    for a in names:
        within = [similarity(x, y) for x, y in itertools.combinations(emb[a], 2)]
        for b in names:
            if b == a:
                continue
            cross = [similarity(x, y) for x in emb[a] for y in emb[b]]
            lines.append(f"{a}/{b}: within {min(within):.3f}-{max(within):.3f}, "
                         f"cross {min(cross):.3f}-{max(cross):.3f}")
            # every pair of clips (different sentences) of voice a beats every a-vs-b pair
            assert min(within) > max(cross), lines[-1]
    print("\n".join(lines))
    # and every clip's nearest neighbour is a clip of its own voice
    flat = [(n, e) for n in names for e in emb[n]]
    for i, (n, e) in enumerate(flat):
        best = max((similarity(e, f), m) for j, (m, f) in enumerate(flat) if j != i)
        assert best[1] == n


@pytest.mark.parametrize("rate", [16000, 44100])
def test_resampled_input_gives_the_same_embedding(rate):
    clip = synth_reference_clips()["child"][0]
    enc = encoder()
    ref = enc.embed(clip, SR)
    other = soxr.resample(clip, SR, rate).astype(np.float32)
    assert similarity(enc.embed(other, rate), ref) > 0.98


def test_quiet_input_is_normalised_and_silence_padding_ignored():
    clip = synth_reference_clips()["deep"][0]
    enc = encoder()
    ref = enc.embed(clip, SR)
    padded = np.concatenate([np.zeros(SR * 2, np.float32), clip * 0.05, np.zeros(SR * 2, np.float32)])
    assert similarity(enc.embed(padded, SR), ref) > 0.97


def test_bad_input_rejected():
    enc = encoder()
    with pytest.raises(InvalidInput):
        enc.embed(np.full(16000, np.nan, dtype=np.float32), 16000)
    with pytest.raises(InvalidInput):
        enc.embed(np.zeros(100, dtype=np.float32), 16000)
    with pytest.raises(InvalidInput):
        enc.embed(np.zeros((3, 3, 3), dtype=np.float32), 16000)
