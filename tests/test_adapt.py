"""Voice adaptation DSP (tts_engine.audio.adapt) on offline synthetic speakers."""

from __future__ import annotations

import json
import math
from functools import lru_cache

import numpy as np
import pytest

from tests.audio_fixtures import speaker_encoder as encoder, SPEAKERS, SR, synth_reference_clips
from tts_engine.audio.adapt import (
    VoiceProfile,
    adapt_to_profile,
    analyze_voice,
    shift_pitch,
)
from tts_engine.audio.world import load_pyworld
from tts_engine.errors import InvalidInput
from tts_engine.speaker.ge2e import similarity


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@lru_cache(maxsize=None)
def profile(name: str) -> VoiceProfile:
    """A voice's profile from its first two clips (~8 s); clips 2 and 3 are held out."""
    clips = synth_reference_clips()[name]
    return analyze_voice(np.concatenate(clips[:2]), SR)


@lru_cache(maxsize=1)
def default_voice_profile() -> VoiceProfile:
    """The default voice's long-term profile, over its four fixture sentences (its median
    F0 varies ~95-130 Hz from sentence to sentence)."""
    return analyze_voice(np.concatenate(synth_reference_clips()["joe"]), SR)


def unadapted() -> np.ndarray:
    """The default voice saying a sentence that no held-out clip says."""
    return synth_reference_clips()["joe"][3]


def median_f0(x: np.ndarray, lo: float, hi: float, fs: int = SR) -> float:
    """Median F0 searched in [lo, hi] (the default voice is ~100 Hz; searched over a wide
    range it gets octave-up errors, so the measurement is told which octave to look in)."""
    pw = load_pyworld()
    x = np.asarray(x, dtype=np.float64)
    f0, t = pw.harvest(x, fs, f0_floor=lo, f0_ceil=hi, frame_period=5.0)
    return float(np.median(f0[f0 > 0]))


def test_shift_pitch_octave_doubles_f0_and_keeps_length():
    clip = synth_reference_clips()["joe"][1]
    up = shift_pitch(clip, SR, 12.0)
    assert up.shape == clip.shape and up.dtype == np.float32
    assert np.max(np.abs(up)) <= 0.99
    ratio = median_f0(up, 100.0, 320.0) / median_f0(clip, 50.0, 160.0)
    print(f"shift_pitch +12: median F0 ratio {ratio:.3f}")
    assert ratio == pytest.approx(2.0, rel=0.05)
    down = shift_pitch(clip, SR, -5.0)
    assert len(down) == len(clip)
    ratio = median_f0(down, 50.0 * 0.75, 160.0 * 0.75) / median_f0(clip, 50.0, 160.0)
    assert ratio == pytest.approx(2 ** (-5 / 12), rel=0.05)


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
    for name in ("child", "deep", "bright"):
        measured = profile(name).formant_ratio / joe.formant_ratio
        assert measured == pytest.approx(SPEAKERS[name].formant_scale, rel=0.05), name
    # F0 scale: the voices say different sentences (the default voice's median F0 varies
    # ~95-130 Hz from sentence to sentence), so only the direction and rough size are checked
    assert child.f0_median_hz / joe.f0_median_hz > 1.3
    assert deep.f0_median_hz / joe.f0_median_hz < 0.95
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


@lru_cache(maxsize=None)
def embed_ref(name: str) -> np.ndarray:
    clips = synth_reference_clips()[name][2:]  # held out from the profile
    return np.mean([encoder().embed(c, SR) for c in clips], axis=0)


@lru_cache(maxsize=1)
def vocoded() -> np.ndarray:
    """WORLD analysis/resynthesis of the unadapted audio toward the default voice's own
    profile: the synthetic speakers are WORLD renderings, so vocoding alone already moves
    audio toward them; adaptation has to beat this, not just the raw audio."""
    src = default_voice_profile()
    return adapt_to_profile(unadapted(), SR, src, source=src)


def check_output(y: np.ndarray) -> None:
    assert y.shape == unadapted().shape and y.dtype == np.float32
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 0.99


# minimum gain over vocoding alone: "bright" differs from the default voice in F0 and
# spectral balance only (same vocal-tract length), and most of that is what vocoding gives
@pytest.mark.parametrize("name,gain_over_vocoded", [("child", 0.05), ("deep", 0.03), ("bright", 0.0)])
def test_adaptation_moves_default_voice_toward_reference(name, gain_over_vocoded):
    enc, raw, target = encoder(), unadapted(), profile(name)
    adapted = adapt_to_profile(raw, SR, target, source=default_voice_profile())
    check_output(adapted)
    s_raw = similarity(enc.embed(raw, SR), embed_ref(name))
    s_voc = similarity(enc.embed(vocoded(), SR), embed_ref(name))
    s_ad = similarity(enc.embed(adapted, SR), embed_ref(name))
    # F0 heard, by harvest told which octave to look in (the default voice's creaky,
    # weak-fundamental F0 is ambiguous to unguided estimates; see world.f0_stats)
    f = target.f0_median_hz
    f0_raw, f0_ad = median_f0(raw, 50.0, 160.0), median_f0(adapted, f / 1.8, f * 1.8)
    formant = analyze_voice(adapted, SR).formant_ratio
    print(f"\n{name}: GE2E to held-out clips: raw {s_raw:.3f}, vocoded only {s_voc:.3f}, "
          f"adapted {s_ad:.3f}; median F0 {f0_raw:.0f} -> {f0_ad:.0f} Hz (target {f:.0f}), "
          f"formant ratio {formant:.3f} (target {target.formant_ratio:.3f})")
    assert s_ad > s_raw + 0.05
    assert s_ad > s_voc + gain_over_vocoded
    # the adapted audio measures like the target
    assert abs(math.log(f0_ad / f)) < abs(math.log(f0_raw / f))
    assert f0_ad == pytest.approx(f, rel=0.25)
    assert formant == pytest.approx(target.formant_ratio, rel=0.05)


def test_adaptation_without_source_profile_and_strength():
    enc, raw, target = encoder(), unadapted(), profile("child")
    ref = embed_ref("child")
    self_source = adapt_to_profile(raw, SR, target)  # source measured from `raw` itself
    half = adapt_to_profile(raw, SR, target, source=default_voice_profile(), strength=0.5)
    for y in (self_source, half):
        check_output(y)
    s_raw = similarity(enc.embed(raw, SR), ref)
    s_self = similarity(enc.embed(self_source, SR), ref)
    s_half = similarity(enc.embed(half, SR), ref)
    print(f"\nchild: raw {s_raw:.3f}, source measured from the clip {s_self:.3f}, "
          f"strength 0.5 {s_half:.3f}")
    assert s_self > s_raw + 0.05
    assert s_raw < s_half


def test_output_never_clips_and_level_is_sane():
    clip = unadapted()
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
