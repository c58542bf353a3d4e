"""Pronunciation lexicons: matching rules, the engine reading them, and their store (per tenant)."""

from __future__ import annotations

import pytest

from storage import LocalStore
from storage.lexicons import LexiconStore, parse_entries
from tts_engine.engine import SynthesisOptions
from tts_engine.errors import InvalidInput, NotFound, PayloadTooLarge
from tts_engine.settings import Settings
from tts_engine.text.pronounce import LexiconEntry, Pronunciation, mark, table_identity


def entry(grapheme, phonemes="x", alphabet="ipa", case_sensitive=False):
    return LexiconEntry(grapheme, alphabet, phonemes, case_sensitive)


def marked(text, *entries):
    out, table = mark(text, (), entries)
    shown = out
    for i, p in enumerate(table):
        shown = shown.replace(chr(0xE000 + i), f"[{p.text}={p.phonemes}]")
    return shown


def test_whole_words_only_case_insensitive_by_default():
    e = entry("cat", "kæt")
    assert marked("Cat, cats, bobcat and CAT.", e) == "[Cat=kæt], cats, bobcat and [CAT=kæt]."


def test_case_sensitive_entries():
    us = entry("US", "juː ɛs", case_sensitive=True)
    assert marked("The US and us.", us) == "The [US=juː ɛs] and us."


def test_longest_match_wins_and_phrases_span_whitespace():
    assert marked("New  York City is big.", entry("New York", "a"), entry("New York City", "b")) == (
        "[New  York City=b] is big.")


def test_first_lexicon_wins_for_the_same_word():
    assert marked("Nguyen", entry("nguyen", "wɪn"), entry("Nguyen", "ŋwiən")) == "[Nguyen=wɪn]"


def test_cjk_entries_match_inside_text_and_latin_ones_get_spaces():
    assert marked("我在重庆工作", entry("重庆", "chong2 qing4", "pinyin")) == "我在[重庆=chong2 qing4]工作"
    assert marked("x2y", entry("2", "tuː")) == "x2y"  # not a whole word


def test_client_pua_characters_are_removed_and_never_index_the_table():
    out, table = mark("a\ue000b \ue005", ())
    assert out == "a b  " and table == ()


def test_identity_changes_with_the_reading():
    a = table_identity([Pronunciation("x", "ipa", "ɛks")])
    assert a and a != table_identity([Pronunciation("x", "ipa", "ɛk")]) and table_identity([]) == ""


def test_engine_reads_lexicon_entries_with_both_families(engine):
    lexicon = (entry("Nguyen", "wɪn"), entry("重庆", "chong2 qing4", "pinyin"))
    piper = engine.prepare("Mr. Nguyen is here.", SynthesisOptions(lexicon=lexicon))
    plain = engine.prepare("Mr. Nguyen is here.", SynthesisOptions())
    assert "wɪn" in "".join(piper.sentences[0].phonemes) and "wɪn" not in "".join(plain.sentences[0].phonemes)
    assert [w for w, _s, _e in piper.sentences[0].words] == ["Mister", "Nguyen", "is", "here"]
    assert piper.pronunciation_key and not plain.pronunciation_key
    kokoro = engine.prepare("我在重庆。", SynthesisOptions(voice="kokoro/jf_alpha", lexicon=lexicon))
    sentence = kokoro.sentences[0]
    assert "ꭧʰʊ↗ŋʨʰi↘ŋ" in "".join(sentence.phonemes)
    assert [w for w, _s, _e in sentence.words] == ["我", "在", "重庆"]


def test_changed_lexicon_changes_the_cache_key(engine):
    from serve_app.audio_request import cache_key

    keys = {cache_key(engine.prepare("Hello Nguyen.", SynthesisOptions(seed=1, lexicon=lex)), "wav", 22050)
            for lex in ((), (entry("Nguyen", "wɪn"),), (entry("Nguyen", "ŋwiən"),), (entry("Other", "ʌ"),))}
    assert len(keys) == 3  # an entry the text does not use leaves the key as it was


def test_a_lexicon_word_is_heard(engine):
    """The override changes the audio, and a reading's length shows in the word's timing."""
    short = engine.synthesize("Say Nguyen now.", seed=1, lexicon=(entry("Nguyen", "wɪn"),))
    long = engine.synthesize("Say Nguyen now.", seed=1, lexicon=(entry("Nguyen", "ŋwiːənwiːənwiːən"),))
    span = lambda r: next(w.end_s - w.start_s for w in r.words if w.word == "Nguyen")  # noqa: E731
    assert span(long) > 2 * span(short)


# ---------------------------------------------------------------------- the store


@pytest.fixture
def lexicons(tmp_path):
    return LexiconStore(LocalStore(Settings(store=f"file://{tmp_path}"), tmp_path))


def test_store_round_trip_list_delete_and_tenant_isolation(lexicons):
    entries = parse_entries([{"grapheme": "Nguyen", "phonemes": "wɪn"},
                             {"grapheme": "重庆", "phonemes": "chong2 qing4", "alphabet": "pinyin"}], 10)
    saved = lexicons.put("acme", "names", entries, "en")
    assert lexicons.get("acme", "names").entries == entries and saved.version
    assert [lex.name for lex in lexicons.list("acme")] == ["names"] and lexicons.list("other") == []
    with pytest.raises(NotFound):
        lexicons.get("other", "names")
    assert lexicons.entries("acme", ["names"]) == entries
    with pytest.raises(NotFound) as caught:
        lexicons.entries("acme", ["names", "missing"])
    assert caught.value.field == "lexicons[1]"
    lexicons.delete("acme", "names")
    with pytest.raises(NotFound):
        lexicons.delete("acme", "names")


@pytest.mark.parametrize(("raw", "field"), [
    ([], "entries"),
    ([{"grapheme": "", "phonemes": "a"}], "entries[0].grapheme"),
    ([{"grapheme": "ok", "phonemes": "a"}, {"grapheme": "x", "phonemes": ""}], "entries[1].phonemes"),
    ([{"grapheme": "ok", "phonemes": "zhong guo", "alphabet": "pinyin"}], "entries[0].phonemes"),
    ([{"grapheme": "ok", "phonemes": "a", "alphabet": "sampa"}], "entries[0].phonemes"),
    ([{"grapheme": "ok", "phonemes": "a", "case_sensitive": "yes"}], "entries[0].case_sensitive"),
    (["word"], "entries[0]"),
])
def test_bad_entries_name_the_field(raw, field):
    with pytest.raises(InvalidInput) as caught:
        parse_entries(raw, 10)
    assert caught.value.field == field


def test_entry_and_name_limits(lexicons):
    with pytest.raises(PayloadTooLarge):
        parse_entries([{"grapheme": f"w{i}", "phonemes": "a"} for i in range(11)], 10)
    with pytest.raises(InvalidInput) as caught:
        lexicons.get("acme", "../etc")
    assert caught.value.field == "name"
