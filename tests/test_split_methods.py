"""Per-request text split methods and pause length (what GPT-SoVITS's text_split_method and
fragment_interval map to), in the text splitter and through the engine."""

from __future__ import annotations

import pytest

from tts_engine.engine import SynthesisOptions
from tts_engine.errors import InvalidInput
from tts_engine.text.split_methods import SPLIT_METHODS, split_text

TEXT = ("Hello there, my friend. It costs 3.5 dollars! Is that fine? Yes; it is. "
        "One more sentence here. And a last one... Done")


@pytest.mark.parametrize(("method", "expected"), [
    ("sentence", ["Hello there, my friend.", "It costs 3.5 dollars!", "Is that fine?", "Yes; it is.",
                  "One more sentence here.", "And a last one...", "Done"]),
    ("none", [TEXT]),
    ("four_sentences", ["Hello there, my friend. It costs 3.5 dollars! Is that fine? Yes; it is.",
                        "One more sentence here. And a last one... Done"]),
    ("fifty_chars", ["Hello there, my friend. It costs 3.5 dollars! Is that fine?",
                     "Yes; it is. One more sentence here. And a last one... Done"]),
    ("cjk_period", [TEXT]),
    ("period", ["Hello there, my friend.", "It costs 3.5 dollars! Is that fine? Yes; it is.",
                "One more sentence here.", "And a last one...", "Done"]),
    ("punctuation", ["Hello there,", "my friend.", "It costs 3.5 dollars!", "Is that fine?", "Yes;", "it is.",
                     "One more sentence here.", "And a last one...", "Done"]),
])
def test_split_methods(method, expected):
    assert split_text(TEXT, method, 400) == expected


def test_cjk_full_stop_and_bare_punctuation():
    assert split_text("你好，我是小明。你好，我是小红。。", "cjk_period", 400) == ["你好，我是小明。", "你好，我是小红。"]
    assert split_text("... !", "punctuation", 400) == []


@pytest.mark.parametrize("method", SPLIT_METHODS)
def test_no_piece_exceeds_the_model_limit(method):
    text = " ".join(f"Sentence number {i} has a few words in it." for i in range(40))
    pieces = split_text(text, method, 120)
    assert pieces and all(len(p) <= 120 for p in pieces)
    assert " ".join(pieces).split() == text.split()  # nothing lost, nothing repeated


def test_unknown_method_and_bad_pause_are_refused():
    with pytest.raises(ValueError):
        split_text("Hi.", "cut9", 400)
    with pytest.raises(InvalidInput) as err:
        SynthesisOptions(split="cut9").validated()
    assert err.value.field == "split"
    with pytest.raises(InvalidInput) as err:
        SynthesisOptions(pause_s=2.5).validated()
    assert err.value.field == "pause_s" and "2.0" in err.value.message


def test_engine_honours_split_and_pause(engine):
    text = "First sentence here. Second one follows."
    base = engine.prepare(text, SynthesisOptions(seed=1))
    whole = engine.prepare(text, SynthesisOptions(seed=1, split="none"))
    assert len(base.sentences) == 2 and len(whole.sentences) == 1
    short = engine.synthesize(text, seed=1, pause_s=0.0)
    long = engine.synthesize(text, seed=1, pause_s=1.0)
    assert len(long.audio) - len(short.audio) == int(1.0 * long.sample_rate)
