"""The engine with two model families: catalog, per-language defaults, language errors, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from tts_engine.engine import SynthesisOptions, TTSEngine
from tts_engine.errors import UnknownVoice, UnsupportedLanguage
from tts_engine.settings import Settings


@pytest.fixture(scope="module")
def ml_engine(tmp_path_factory) -> TTSEngine:
    return TTSEngine(Settings(device="cpu", model_cache_dir=tmp_path_factory.getbasetemp() / "models"))


def test_catalog_lists_both_families_with_languages_and_accent_note(ml_engine):
    voices = {v.id: v for v in ml_engine.voices.list()}
    assert "en_US-joe-medium" in voices
    kokoro = [v for v in voices.values() if v.family == "kokoro"]
    assert {v.id for v in kokoro} == {f"kokoro/{n}" for n in
                                      ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")}
    for voice in kokoro:
        described = voice.describe()
        assert described["sample_rate"] == 24000 and set(described["languages"]) == {"en", "zh", "ja"}
        assert "Japanese" in described["note"]
    assert voices["en_US-joe-medium"].describe()["languages"] == ["en"]


@pytest.mark.parametrize(("text", "voice", "language"), [
    ("欢迎使用语音合成系统。", "kokoro/jf_gongitsune", "zh"),
    ("今日はいい天気ですね。", "kokoro/jf_alpha", "ja"),
    ("Hello world.", "en_US-joe-medium", "en"),
    ("Hello，你好世界", "kokoro/jf_gongitsune", "zh"),          # the seed article's mixed example
    ("我们用GPU和Python开发API。", "kokoro/jf_gongitsune", "zh"),
])
def test_request_without_voice_gets_its_languages_default(ml_engine, text, voice, language):
    prepared = ml_engine.prepare(text, SynthesisOptions())
    assert (prepared.voice.id, prepared.language) == (voice, language)


def test_openai_voice_name_follows_the_text_language(ml_engine):
    assert ml_engine.prepare("欢迎。", SynthesisOptions(voice="alloy")).voice.id == "kokoro/jf_gongitsune"
    assert ml_engine.prepare("Welcome.", SynthesisOptions(voice="alloy")).voice.id == "en_US-joe-medium"


def test_language_alias_resolves_to_that_languages_default(tmp_path):
    engine = TTSEngine(Settings(device="cpu", voice_aliases={"zh-CN-XiaoyanNeural": "lang:zh"}))
    assert engine.prepare("你好。", SynthesisOptions(voice="zh-CN-XiaoyanNeural")).voice.id == "kokoro/jf_gongitsune"


@pytest.mark.parametrize("text", ["안녕하세요, 반갑습니다.", "مرحبا بالعالم"])
def test_unsupported_script_is_422_naming_the_languages(ml_engine, text):
    with pytest.raises(UnsupportedLanguage) as err:
        ml_engine.prepare(text, SynthesisOptions())
    assert err.value.field == "language" and err.value.status == 422
    assert all(lang in err.value.message for lang in ("en", "zh", "ja"))


def test_voice_that_cannot_speak_the_forced_language_names_the_voices_that_can(ml_engine):
    with pytest.raises(UnsupportedLanguage) as err:
        ml_engine.prepare("你好。", SynthesisOptions(voice="en_US-joe-medium", language="zh"))
    assert "kokoro/jf_gongitsune" in err.value.message and err.value.field == "language"


def test_korean_forced_on_kokoro_is_refused(ml_engine):
    with pytest.raises(UnsupportedLanguage):
        ml_engine.prepare("Hello.", SynthesisOptions(voice="kokoro/jf_alpha", language="ko"))


def test_unknown_voice_lists_kokoro_voices(ml_engine):
    with pytest.raises(UnknownVoice) as err:
        ml_engine.prepare("Hi.", SynthesisOptions(voice="kokoro/nobody"))
    assert "kokoro/jf_alpha" in err.value.message


def test_unreadable_characters_are_dropped_and_reported_not_a_crash(ml_engine):
    english = ml_engine.prepare("Hello 世界, how are you?", SynthesisOptions(voice="en_US-joe-medium"))
    assert {"世", "界"} <= set(english.dropped)
    mixed = ml_engine.prepare("你好😀，안녕 world。", SynthesisOptions())
    assert mixed.voice.family == "kokoro" and mixed.dropped


def test_cache_identity_keeps_piper_fields_and_adds_family_version(ml_engine):
    piper = ml_engine.prepare("Hello.", SynthesisOptions())
    kokoro = ml_engine.prepare("你好。", SynthesisOptions(speed=1.25))
    assert set(piper.control_identity) == {"length_scale", "noise_scale", "noise_w"}
    assert piper.model_version.startswith("vits-torch-1-bf16-bf16flow:")   # the default; float32 keys: test_perf_levers
    assert kokoro.model_version.startswith("kokoro-2-")
    assert kokoro.control_identity["length_scale"] == pytest.approx(0.8)


def test_mandarin_synthesis_end_to_end(ml_engine):
    result = ml_engine.synthesize("欢迎使用语音合成系统。", seed=1)
    assert result.sample_rate == 24000 and result.voice == "kokoro/jf_gongitsune"
    assert 1.0 < result.duration_s < 6.0
    assert np.abs(result.audio).max() > 0.05


def test_kokoro_stream_joins_to_audio(ml_engine):
    chunks = list(ml_engine.stream("こんにちは。", voice="kokoro/jf_alpha"))
    assert sum(len(c) for c in chunks) / 24000 > 0.3


def test_cli_takes_language(tmp_path, monkeypatch):
    from tts_engine.__main__ import main
    from tts_engine.audio.encoders import decode

    out = tmp_path / "out.wav"
    assert main(["欢迎使用语音合成系统。", "--language", "zh", "-o", str(out)]) == 0
    audio, rate = decode(out.read_bytes())
    assert rate == 24000 and len(audio) / rate > 1.0


CLAUSES = "When the storm finally passed, the villagers walked down to the river."


def test_a_kokoro_stream_starts_with_its_first_clause(ml_engine):
    """Kokoro decodes a piece whole, so a stream's first sentence is cut after a clause: the
    first audio needs only the clause decoded. Piper streams within a piece and is never cut."""
    streamed = ml_engine.prepare(CLAUSES, SynthesisOptions(voice="kokoro/jf_alpha", streaming=True))
    assert [s.text for s in streamed.sentences] == ["When the storm finally passed,",
                                                    "the villagers walked down to the river."]
    assert streamed.clause_cut and streamed.pause_before(1, 0.25, 0.05) == 0.05
    plain = ml_engine.prepare(CLAUSES, SynthesisOptions(voice="kokoro/jf_alpha"))
    assert len(plain.sentences) == 1 and not plain.clause_cut
    piper = ml_engine.prepare(CLAUSES, SynthesisOptions(streaming=True))
    assert piper.voice.family == "piper" and len(piper.sentences) == 1 and not piper.clause_cut
    zh = ml_engine.prepare("欢迎使用语音合成系统，我们支持中文、英文和日文。", SynthesisOptions(streaming=True))
    assert zh.voice.family == "kokoro" and zh.clause_cut and len(zh.sentences) == 2


def test_clause_cut_has_its_own_cache_key_and_none_when_nothing_was_cut(ml_engine):
    from serve_app.audio_request import cache_key

    def key(text, streaming):
        return cache_key(ml_engine.prepare(text, SynthesisOptions(voice="kokoro/jf_alpha", seed=1,
                                                                  streaming=streaming)), "wav", 24000)
    assert key(CLAUSES, True) != key(CLAUSES, False)       # other pieces, other audio
    assert key("Short and whole.", True) == key("Short and whole.", False)
    three = ml_engine.prepare(CLAUSES + " Then they slept.", SynthesisOptions(voice="kokoro/jf_alpha", streaming=True))
    assert len(three.sentences) == 3 and three.pause_before(2, 0.25, 0.05) == 0.25  # a sentence's pause


def test_kokoro_pieces_keep_short_edges_so_sentences_join_like_pipers(ml_engine):
    """Kokoro pads a piece with ~0.3 s of silence before and ~0.5-0.7 s after it; trimmed to
    LEAD_KEEP_S / TAIL_KEEP_S, two sentences are ~0.5 s apart (the 0.25 s pause included), not ~1.2 s."""
    from tts_engine.audio.assembly import loud_frames
    from tts_engine.models.kokoro_family import LEAD_KEEP_S, TAIL_KEEP_S

    result = ml_engine.synthesize("The storm passed at night. In the morning, we went to the river.",
                                  voice="kokoro/jf_alpha", seed=1)
    loud = loud_frames(result.audio, 24000)
    quiet_runs, run = [], 0
    for flag in list(loud) + [True]:
        if flag and run:
            quiet_runs.append(run * 0.01)
        run = 0 if flag else run + 1
    lead = int(np.argmax(loud)) * 0.01
    tail = len(result.audio) / 24000 - (len(loud) - int(np.argmax(loud[::-1]))) * 0.01
    assert lead <= LEAD_KEEP_S + 0.02 and tail <= TAIL_KEEP_S + 0.02
    assert 0.3 < max(quiet_runs) < 0.7, quiet_runs   # the sentence gap


def test_trimmed_edges_move_the_durations_with_the_audio():
    from tts_engine.models.kokoro_family import LEAD_KEEP_S, TAIL_KEEP_S, in_chunks, trimmed_edges
    from tts_engine.models.protocol import Rendered
    from tts_engine.timestamps import sentence_words

    rate = 24000
    t = np.arange(rate) / rate
    speech = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    audio = np.concatenate([np.zeros(rate // 2, np.float32), speech, np.zeros(rate * 7 // 10, np.float32)])
    piece = Rendered(audio, (rate // 2, rate // 2, rate * 7 // 10), offset=rate // 2)   # pad, two words, pad
    cut = trimmed_edges(piece)
    assert len(cut.audio) == pytest.approx(rate * (LEAD_KEEP_S + 1 + TAIL_KEEP_S), abs=0.011 * rate)
    np.testing.assert_array_equal(cut.audio, audio[rate // 2 - int(LEAD_KEEP_S * rate):][:len(cut.audio)])
    assert cut.offset == int(LEAD_KEEP_S * rate)   # the leading pad keeps what the audio keeps
    assert cut.offset + sum(cut.durations) == len(cut.audio)   # the last symbol's pause shortened with the tail
    spans = (("one", 0, 1), ("two", 1, 2))
    before, after = sentence_words(spans, piece, rate), sentence_words(spans, cut, rate)
    assert [round(w.start_s - 0.5 + LEAD_KEEP_S, 6) for w in before] == [round(w.start_s, 6) for w in after]
    chunks = list(in_chunks(cut, 2400, 9600))
    assert chunks[0].durations == cut.durations and all(c.durations is None for c in chunks[1:])
    np.testing.assert_array_equal(np.concatenate([c.audio for c in chunks]), cut.audio)
    silent = Rendered(np.zeros(rate, np.float32))
    assert trimmed_edges(silent) is silent   # nothing loud: left alone
