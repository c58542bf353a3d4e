"""Word timestamps from both model families, espeak word alignment, and captions."""

from __future__ import annotations

import numpy as np
import pytest

from tts_engine.engine import SynthesisOptions
from tts_engine.models.protocol import Rendered
from tts_engine.text.word_align import align_words, text_words
from tts_engine.timestamps import WordTiming, captions, cues, sentence_words, trimmed

FRAME_S = 0.01


def frame_levels(audio: np.ndarray, rate: int) -> np.ndarray:
    """RMS of 10 ms frames relative to the loudest one."""
    hop = int(FRAME_S * rate)
    n = len(audio) // hop
    rms = np.sqrt(np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1))
    return rms / rms.max()


def check_words(result, expected: list[str]) -> None:
    """Monotonic, covering the audio, each word's span holding sound (not silence)."""
    words = result.words
    assert [w.word for w in words] == expected
    for w in words:
        assert 0 <= w.start_s < w.end_s <= result.duration_s + 1e-6, w
    for a, b in zip(words, words[1:]):
        assert a.end_s <= b.start_s + 1e-6, (a, b)
    level = frame_levels(result.audio, result.sample_rate)
    loud = level > 0.1
    inside = np.zeros_like(loud)
    for w in words:
        a, b = int(w.start_s / FRAME_S), int(np.ceil(w.end_s / FRAME_S))
        inside[a:b] = True
        # Sound in it (-26 dB of the peak), and most of it above silence (-40 dB).
        assert level[a:b].max() >= 0.05 and (level[a:b] > 0.01).mean() >= 0.5, f"{w} is mostly silence"
    assert (loud & inside).sum() >= 0.85 * loud.sum(), "the words leave much of the speech uncovered"
    first_sound = np.argmax(loud) * FRAME_S
    last_sound = (len(loud) - np.argmax(loud[::-1])) * FRAME_S
    assert words[0].start_s <= first_sound + 0.05 and words[-1].end_s >= last_sound - 0.15


@pytest.mark.parametrize(("text", "voice", "expected"), [
    ("I went to the store in the morning because of the rain. Then, after a long pause, I came home.",
     None, "I went to the store in the morning because of the rain Then after a long pause I came home".split()),
    ("Doctor Smith paid $5 for it.", None, ["Doctor", "Smith", "paid", "five", "dollars", "for", "it"]),
    ("Hello world, this is Kokoro speaking.", "kokoro/jf_alpha",
     ["Hello", "world", "this", "is", "Kokoro", "speaking"]),
    ("今天天气很好，我们去公园散步吧。", "kokoro/jf_gongitsune", list("今天天气很好我们去公园散步吧")),
    ("こんにちは、元気ですか。", "kokoro/jf_alpha", ["こんにちは", "元気", "です", "か"]),
])
def test_words_are_monotonic_cover_the_audio_and_hold_its_energy(engine, text, voice, expected):
    check_words(engine.synthesize(text, voice=voice, seed=3), expected)


def test_words_follow_speed(engine):
    slow = engine.synthesize("Timestamps follow the speed.", seed=1, speed=0.6)
    fast = engine.synthesize("Timestamps follow the speed.", seed=1, speed=1.6)
    assert slow.words[-1].end_s > 1.8 * fast.words[-1].end_s


def test_stream_first_chunk_carries_the_batch_durations(engine):
    prepared = engine.prepare("The first chunk knows every duration.", SynthesisOptions(seed=5))
    item = prepared.items()[0]
    whole = engine.render_batch(item.voice, [item])[0]
    chunks = list(engine.render_stream(item))
    assert chunks[0].durations == whole.durations and all(c.durations is None for c in chunks[1:])
    assert len(whole.durations) == len(item.ids)
    assert np.abs(np.concatenate([c.audio for c in chunks]) - whole.audio).max() < 1e-3


def test_kokoro_durations_fill_its_audio(engine):
    prepared = engine.prepare("你好世界。", SynthesisOptions(voice="kokoro/jf_alpha"))
    item = prepared.items()[0]
    rendered = engine.render_batch(item.voice, [item])[0]
    assert len(rendered.durations) == len(item.ids)
    # Durations count 600-sample frames; the leading pad is the offset, the trailing one the rest,
    # both trimmed to the edge silence kept (a final stop's parked pause is shortened with it).
    total = rendered.offset + sum(rendered.durations)
    assert 0 < rendered.offset <= 0.2 * 24000 and 0 <= len(rendered.audio) - total <= 0.2 * 24000


# ---------------------------------------------------------------------- alignment


def test_merged_function_words_are_split_back():
    # espeak says "in the" as one word "ɪnðə"; read alone they are "ˈɪn" and "ðə".
    phonemes = list("aɪ wɛnt ɪnðə hˈaʊs.")
    words = ["I", "went", "in", "the", "house"]
    spans = align_words(phonemes, words, ["ˈaɪ", "wˈɛnt", "ˈɪn", "ðˈə", "hˈaʊs"])
    got = {w: "".join(phonemes[s:e]) for w, s, e in spans}
    assert got == {"I": "aɪ", "went": "wɛnt", "in": "ɪn", "the": "ðə", "house": "hˈaʊs"}


def test_unmatched_word_takes_the_unmatched_espeak_word():
    phonemes = list("ˈæftɚɹ ɐ lˈɔŋ")
    spans = align_words(phonemes, ["after", "a", "long"], ["ˈæftɚ", "ˈeɪ", "lˈɔŋ"])
    assert ["".join(phonemes[s:e]) for _w, s, e in spans] == ["ˈæftɚɹ", "ɐ", "lˈɔŋ"]


def test_text_words_drop_punctuation():
    assert text_words('"Well -- it\'s 5 o\'clock," she said.') == ["Well", "it's", "5", "o'clock", "she", "said"]


def test_sentence_words_use_offset_and_durations():
    rendered = Rendered(np.zeros(1000, np.float32), (100, 100, 200, 100), offset=50)
    words = sentence_words([("a", 0, 2), ("b", 2, 4)], rendered, 1000, start_s=1.0)
    assert words == [WordTiming("a", 1.05, 1.25), WordTiming("b", 1.25, 1.55)]
    assert sentence_words([("a", 0, 2)], Rendered(np.zeros(10, np.float32)), 1000) == []


def test_trimmed_cuts_silence_but_never_extends():
    rate = 1000
    audio = np.zeros(1000, np.float32)
    audio[200:400] = 0.5
    words = trimmed([WordTiming("x", 0.1, 0.9), WordTiming("y", 0.95, 1.0)], audio, rate)
    assert words[0] == WordTiming("x", 0.2, 0.4)
    assert words[1] == WordTiming("y", 0.95, 1.0)  # all silence: left as it was


# ---------------------------------------------------------------------- captions


def test_srt_and_vtt():
    words = [WordTiming("Hello", 0.0, 0.4), WordTiming("<world>", 0.45, 0.9), WordTiming("Again", 2.0, 2.5)]
    srt = captions(words, "srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:00,900\nHello <world>\n")
    assert "2\n00:00:02,000 --> 00:00:02,500\nAgain\n" in srt
    vtt = captions(words, "vtt")
    assert vtt.startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:00:00.900\nHello &lt;world&gt;\n")


def test_cues_break_at_length_and_join_cjk_without_spaces():
    many = [WordTiming(f"word{i}", i * 0.3, i * 0.3 + 0.25) for i in range(20)]
    assert all(len(text) <= 42 for _s, _e, text in cues(many))
    chinese = [WordTiming(ch, i * 0.2, i * 0.2 + 0.18) for i, ch in enumerate("你好世界")]
    assert cues(chinese) == [(0.0, 0.78, "你好世界")]
    with pytest.raises(ValueError):
        captions(many, "ass")


def test_render_item_ids_and_spans_agree(engine):
    """Every word span lies inside its sentence's ids (both families)."""
    for text, voice in (("Numbers like 42 and words.", None), ("我喜欢Python和AI。", "kokoro/jf_alpha")):
        for sentence in engine.prepare(text, SynthesisOptions(voice=voice)).sentences:
            assert sentence.words
            for _w, s, e in sentence.words:
                assert 0 <= s <= e <= len(sentence.ids)


def test_kokoro_torch_port_reports_the_same_kind_of_durations(tmp_path_factory):
    """The torch Kokoro (the GPU backend): batched, single and streamed renders agree on durations."""
    from tts_engine.engine import TTSEngine
    from tts_engine.settings import Settings

    engine = TTSEngine(Settings(device="cpu", kokoro_backend="torch"))
    items = [engine.prepare(text, SynthesisOptions(voice="kokoro/jf_alpha")).items()[0]
             for text in ("你好世界。", "今日はいい天気ですね。")]
    batch = engine.render_batch(items[0].voice, items)
    for item, rendered in zip(items, batch):
        alone = engine.render_batch(item.voice, [item])[0]
        assert rendered.durations == alone.durations and len(alone.durations) == len(item.ids)
        assert 0 < alone.offset + sum(alone.durations) <= len(alone.audio)
    streamed = list(engine.render_stream(items[0]))
    assert streamed[0].durations == batch[0].durations and streamed[0].offset == batch[0].offset
    prepared = engine.prepare("你好世界。", SynthesisOptions(voice="kokoro/jf_alpha"))
    assert [w.word for w in prepared.words(batch[:1], 0.25)] == list("你好世界")
