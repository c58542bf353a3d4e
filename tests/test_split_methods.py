"""Per-request text split methods and pause length (what GPT-SoVITS's text_split_method and
fragment_interval map to), in the text splitter and through the engine."""

from __future__ import annotations

import pytest

from tts_engine.engine import SynthesisOptions
from tts_engine.errors import InvalidInput
from tts_engine.text.split_methods import FIRST_CLAUSE, SPLIT_METHODS, first_clause_apart, split_text, spoken_units

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


# ---------------------------------------------------------------------- a stream's first clause


@pytest.mark.parametrize("text, expected", [
    ("When the storm finally passed, the villagers walked down to the river. Then they slept.",
     ["When the storm finally passed,", "the villagers walked down to the river.", "Then they slept."]),
    ("欢迎使用语音合成系统，我们支持中文、英文和日文。", ["欢迎使用语音合成系统，", "我们支持中文、英文和日文。"]),
    # the first clause is too short to be worth a piece of its own, or the rest is
    ("Hi, there you are.", ["Hi, there you are."]),
    ("你好，世界。今天天气很好，我们出去走走吧。", ["你好，世界。", "今天天气很好，我们出去走走吧。"]),
    ("When the storm finally passed, it rained.", ["When the storm finally passed, it rained."]),
    # no clause mark; "1,234" is a number, not a clause end
    ("No clause mark in this sentence at all.", ["No clause mark in this sentence at all."]),
    ("It cost 1,234 dollars and took us five long weeks to earn.",
     ["It cost 1,234 dollars and took us five long weeks to earn."]),
])
def test_first_clause_is_cut_only_where_both_sides_are_worth_a_piece(text, expected):
    assert split_text(text, FIRST_CLAUSE, 400) == expected


def test_first_clause_is_ours_not_a_clients_choice():
    assert FIRST_CLAUSE not in SPLIT_METHODS
    with pytest.raises(InvalidInput) as err:
        SynthesisOptions(split=FIRST_CLAUSE).validated()
    assert err.value.field == "split"


def test_spoken_units_count_cjk_characters_and_words():
    assert spoken_units("iPhone 15 很好") == 4 and spoken_units("，、") == 0
    assert first_clause_apart([]) == []
