"""Voice adaptation DSP (tts_engine.adapt) on offline synthetic speakers."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest

from tests.audio_fixtures import SPEAKERS, SR, synth_reference_clips
from tts_engine.adapt import (
    VoiceProfile,
    adapt_to_profile,
    analyze_voice,
    load_pyworld,
    shift_pitch,
)
from tts_engine.errors import InvalidInput
from tts_engine.speaker import SpeakerEncoder, similarity


@lru_cache(maxsize=1)
def encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


@lru_cache(maxsize=None)
def profile(name: str, index: int = 0) -> VoiceProfile:
    return analyze_voice(synth_reference_clips()[name][index], SR)


@lru_cache(maxsize=1)
def default_voice_profile() -> VoiceProfile:
    joe = synth_reference_clips()["joe"]
    return analyze_voice(np.concatenate([joe[0], joe[2]]), SR)


def median_f0(x: np.ndarray, fs: int = SR) -> float:
    pw = load_pyworld()
    x = np.asarray(x, dtype=np.float64)
    f0, t = pw.dio(x, fs, f0_floor=50.0, f0_ceil=800.0, frame_period=5.0)
    f0 = pw.stonemask(x, f0, t, fs)
    return float(np.median(f0[f0 > 0]))


def test_shift_pitch_octave_doubles_f0_and_keeps_length():
    clip = synth_reference_clips()["joe"][1]
    up = shift_pitch(clip, SR, 12.0)
    assert up.shape == clip.shape and up.dtype == np.float32
    assert np.max(np.abs(up)) <= 0.99
    ratio = median_f0(up) / median_f0(clip)
    print(f"shift_pitch +12: median F0 ratio {ratio:.3f}")
    assert ratio == pytest.approx(2.0, rel=0.05)
    down = shift_pitch(clip, SR, -5.0)
    assert len(down) == len(clip)
    assert median_f0(down) / median_f0(clip) == pytest.approx(2 ** (-5 / 12), rel=0.05)


def test_shift_pitch_zero_is_identity():
    clip = synth_reference_clips()["joe"][1]
    assert shift_pitch(clip, SR, 0) is clip
    with pytest.raises(InvalidInput):
        shift_pitch(clip, SR, 48)


def test_analyze_orders_deep_below_child():
    deep, child, joe = profile("deep"), profile("child"), profile("joe")
    print(f"\njoe {joe}\ndeep {deep}\nchild {child}")
    assert deep.f0_median_hz < joe.f0_median_hz < child.f0_median_hz
    assert deep.formant_ratio < joe.formant_ratio < child.formant_ratio
    # the fixture's known warps are recovered (relative to the default voice)
    assert 0.93 < joe.formant_ratio < 1.07
    for name in ("child", "deep"):
        measured = profile(name).formant_ratio / joe.formant_ratio
        assert measured == pytest.approx(SPEAKERS[name].formant_scale, rel=0.05), name
        assert profile(name).f0_median_hz / joe.f0_median_hz == pytest.approx(
            SPEAKERS[name].f0_scale, rel=0.15), name
    assert len(deep.spectral_tilt) == len(deep.band_edges_hz) - 1 == 8
    assert abs(sum(deep.spectral_tilt)) < 1e-2  # zero-mean over bands


def test_profile_json_roundtrip_and_validation():
    p = profile("child")
    q = VoiceProfile.from_dict(json.loads(json.dumps(p.to_dict())))
    assert q == p
    with pytest.raises(InvalidInput):
        VoiceProfile.from_dict({"f0_median_hz": 100})
    with pytest.raises(InvalidInput):
        VoiceProfile.from_dict({**p.to_dict(), "formant_ratio": float("nan")})


def test_analyze_rejects_unusable_audio():
    with pytest.raises(InvalidInput):
        analyze_voice(np.zeros(SR * 2, dtype=np.float32), SR)
    with pytest.raises(InvalidInput):
        analyze_voice(np.zeros(100, dtype=np.float32), SR)


def test_low_sample_rate_reference_uses_fewer_bands():
    import soxr

    clip = synth_reference_clips()["deep"][0]
    p8 = analyze_voice(soxr.resample(clip, SR, 8000), 8000)
    assert p8.band_edges_hz[-1] <= 3600 and len(p8.spectral_tilt) == len(p8.band_edges_hz) - 1
    assert p8.formant_ratio == pytest.approx(profile("deep").formant_ratio, rel=0.08)


@pytest.mark.parametrize("name", ["child", "deep", "bright"])
def test_adaptation_moves_default_voice_toward_reference(name):
    clips = synth_reference_clips()
    enc = encoder()
    raw = clips["joe"][1]  # a sentence none of the other voices' held-out clips say
    target = profile(name, 0)  # measured from one clip ...
    ref = np.mean([enc.embed(c, SR) for c in clips[name][1:]], axis=0)  # ... scored on the others

    adapted = adapt_to_profile(raw, SR, target, source=default_voice_profile())
    self_measured = adapt_to_profile(raw, SR, target)  # source measured from `raw` itself
    half = adapt_to_profile(raw, SR, target, source=default_voice_profile(), strength=0.5)

    s_raw = similarity(enc.embed(raw, SR), ref)
    s_ad = similarity(enc.embed(adapted, SR), ref)
    s_self = similarity(enc.embed(self_measured, SR), ref)
    s_half = similarity(enc.embed(half, SR), ref)
    print(f"\n{name}: GE2E to reference raw {s_raw:.3f} -> adapted {s_ad:.3f} "
          f"(source measured from the clip {s_self:.3f}, strength 0.5 {s_half:.3f})")
    assert s_ad > s_raw + 0.1
    assert s_self > s_raw + 0.1
    assert s_raw < s_half < s_ad + 0.02
    for y in (adapted, self_measured, half):
        assert y.shape == raw.shape and y.dtype == np.float32
        assert np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 0.99

    # the adapted audio measures like the target
    got = analyze_voice(adapted, SR)
    assert got.f0_median_hz == pytest.approx(target.f0_median_hz, rel=0.12)
    assert got.formant_ratio == pytest.approx(target.formant_ratio, rel=0.05)


def test_output_never_clips_and_level_is_sane():
    clip = synth_reference_clips()["joe"][1]
    loud = np.clip(clip * 8.0, -1.0, 1.0).astype(np.float32)  # driven into clipping
    y = adapt_to_profile(loud, SR, profile("child"))
    assert len(y) == len(loud) and np.max(np.abs(y)) <= 0.99
    frames = y[: len(y) // 441 * 441].reshape(-1, 441)
    e = np.mean(frames.astype(np.float64) ** 2, axis=1)
    active_rms_db = 10 * np.log10(np.mean(e[e > e.max() * 1e-4]))
    assert -24.0 < active_rms_db < -17.0  # target -20 dBFS, less what the limiter takes
    quiet = adapt_to_profile(clip * 0.01, SR, profile("deep"), target_rms_dbfs=None)
    assert np.max(np.abs(quiet)) < 0.05  # level kept when not normalising
    silent = adapt_to_profile(np.zeros(SR, dtype=np.float32), SR, profile("deep"))
    assert silent.shape == (SR,) and not np.any(silent)
    with pytest.raises(InvalidInput):
        adapt_to_profile(clip, SR, profile("deep"), strength=1.5)
