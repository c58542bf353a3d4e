"""SSML subset: parts, prosody, breaks, say-as, sub, phoneme, lang, voice; hardened parsing."""

from __future__ import annotations

import pytest

from tts_engine.engine import SynthesisOptions
from tts_engine.text.pronounce import Pronunciation
from tts_engine.text.ssml import InvalidSsml, Prosody, looks_like_ssml, parse_ssml


def texts(doc):
    return [p.text for p in doc.parts]


def test_breaks_and_paragraphs_cut_parts_with_silence_before():
    doc = parse_ssml('<speak><p>One.</p><p>Two <break time="1.5s"/> three <break strength="weak"/> four'
                     '<break time="300ms"/></p></speak>')
    assert texts(doc) == ["One.", "Two", "three", "four"]
    assert [p.break_before_s for p in doc.parts] == [0.0, 0.5, 1.5, 0.2]
    assert doc.trailing_break_s == pytest.approx(0.3 + 0.5)


def test_sentences_get_their_end_marks():
    assert texts(parse_ssml("<speak><s>No full stop</s><s>Already one!</s><s>中文句子</s></speak>")) == [
        "No full stop. Already one! 中文句子。"]


def test_prosody_nests_rate_multiplies_pitch_adds_volume_in_db():
    doc = parse_ssml('<speak>a<prosody rate="150%" pitch="+2st">b<prosody rate="slow" pitch="-1st" '
                     'volume="+6dB">c</prosody></prosody><prosody rate="+20%" pitch="high" volume="soft">d'
                     '</prosody></speak>')
    assert texts(doc) == ["a", "b", "c", "d"]
    assert doc.parts[1].prosody == Prosody(1.5, 2.0, 1.0)
    assert doc.parts[2].prosody.rate == pytest.approx(1.125) and doc.parts[2].prosody.pitch == 1.0
    assert doc.parts[2].prosody.volume == pytest.approx(1.995, abs=1e-3)
    assert doc.parts[3].prosody == Prosody(1.2, 3.0, 0.5)


@pytest.mark.parametrize(("kind", "fmt", "said", "expected"), [
    ("cardinal", None, "1,234", "one thousand two hundred thirty-four"),
    ("ordinal", None, "21", "twenty-first"),
    ("digits", None, "2024", "two zero two four"),
    ("characters", None, "SSML", "S S M L"),
    ("date", "mdy", "3/5/2024", "March fifth, twenty twenty-four"),
    ("date", "dmy", "05.03.2024", "March fifth, twenty twenty-four"),
    ("telephone", None, "555-0100", "five five five, zero one zero zero"),
])
def test_say_as_in_english(kind, fmt, said, expected):
    attr = f' format="{fmt}"' if fmt else ""
    doc = parse_ssml(f'<speak><say-as interpret-as="{kind}"{attr}>{said}</say-as></speak>')
    assert texts(doc) == [expected]


def test_say_as_follows_the_language():
    doc = parse_ssml('<speak>今天是<say-as interpret-as="date" format="ymd">2024-03-05</say-as>，'
                     '电话<say-as interpret-as="telephone">110</say-as></speak>')
    assert texts(doc) == ["今天是二零二四年三月五日，电话幺幺零"]
    doc = parse_ssml('<speak xml:lang="ja">第<say-as interpret-as="digits">12</say-as></speak>')
    assert texts(doc) == ["第いち に"]


def test_sub_phoneme_lang_and_voice():
    doc = parse_ssml('<speak><sub alias="World Wide Web">WWW</sub> and <phoneme alphabet="ipa" ph="təˈmɑːtoʊ">'
                     'tomato</phoneme><voice name="kokoro/jf_alpha"><lang xml:lang="zh-CN">去<phoneme '
                     'alphabet="pinyin" ph="chong2 qing4">重庆</phoneme></lang></voice></speak>')
    first, second = doc.parts
    assert first.text == "World Wide Web and \ue000" and first.voice is None
    assert first.pronunciations == (Pronunciation("tomato", "ipa", "təˈmɑːtoʊ"),)
    assert second.text == "去 \ue000" and second.voice == "kokoro/jf_alpha" and second.language == "zh-CN"
    assert second.pronunciations == (Pronunciation("重庆", "pinyin", "chong2 qing4"),)


def test_unknown_elements_keep_their_text_and_warn():
    doc = parse_ssml('<speak>Say <emphasis level="strong">this</emphasis><mark name="m1"/> now.</speak>')
    assert texts(doc) == ["Say this now."]
    assert len(doc.warnings) == 2 and "<emphasis> at line 1, column 12" in doc.warnings[0]


@pytest.mark.parametrize(("document", "message"), [
    ("<speak>unclosed", "invalid SSML at line 1, column 16"),
    ('<speak>\n  <break time="forever"/></speak>', "<break> at line 2, column 3: time must look like"),
    ('<speak><break time="11s"/>x</speak>', "at most 10s"),
    ('<speak><break strength="huge"/>x</speak>', "strength must be one of"),
    ('<speak><prosody rate="3">x</prosody></speak>', "<prosody> at line 1, column 8: rate comes to 3"),
    ('<speak><prosody pitch="+50Hz">x</prosody></speak>', "pitch '+50Hz' is not understood"),
    ('<speak><say-as interpret-as="cardinal">many</say-as></speak>', "<say-as> at line 1, column 8"),
    ('<speak><say-as interpret-as="fraction">1/2</say-as></speak>', "interpret-as must be one of"),
    ('<speak><say-as interpret-as="date" format="ymd">2024-13-01</say-as></speak>', "no such month"),
    ('<speak><phoneme alphabet="pinyin" ph="zhong guo">中国</phoneme></speak>', "tone number"),
    ('<speak><phoneme alphabet="sampa" ph="x">x</phoneme></speak>', "alphabet must be one of"),
    ("<speak><voice>x</voice></speak>", "the 'name' attribute is required"),
    ('<speak><lang xml:lang="klingon">x</lang></speak>', "unknown language"),
    ("<voice name='a'>x</voice>", "<speak> as its root"),
    ("<speak><break/></speak>", "no text to speak"),
])
def test_invalid_ssml_is_422_naming_element_and_position(document, message):
    with pytest.raises(InvalidSsml) as caught:
        parse_ssml(document)
    assert caught.value.status == 422 and caught.value.field == "text"
    assert message in caught.value.message


@pytest.mark.parametrize("document", [
    # billion laughs, external entity (XXE), external DTD: refused before anything is expanded or fetched
    '<?xml version="1.0"?><!DOCTYPE speak [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;">]>'
    "<speak>&b;</speak>",
    '<!DOCTYPE speak [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><speak>&xxe;</speak>',
    '<!DOCTYPE speak SYSTEM "http://127.0.0.1:9/x.dtd"><speak>hi</speak>',
])
def test_dtds_entities_and_external_references_are_refused(document):
    with pytest.raises(InvalidSsml, match="must not contain a DTD"):
        parse_ssml(document)


def test_limits():
    with pytest.raises(InvalidSsml, match="deeper than"):
        parse_ssml("<speak>" + "<p>" * 60 + "x" + "</p>" * 60 + "</speak>")
    with pytest.raises(InvalidSsml, match="more than 3 parts"):
        parse_ssml("<speak>" + "a<break/>" * 5 + "</speak>", max_parts=3)


def test_opt_in_by_leading_speak():
    assert looks_like_ssml('  <speak version="1.1">x</speak>')
    assert looks_like_ssml('<?xml version="1.0"?>\n<speak>x</speak>')
    assert not looks_like_ssml("<speaker> is a word") and not looks_like_ssml("Say <speak> later")


def test_client_private_use_characters_are_not_placeholders():
    doc = parse_ssml("<speak>a\ue000b</speak>")
    assert texts(doc) == ["a b"] and doc.parts[0].pronunciations == ()


def test_phoneme_reading_reaches_the_audio_side(engine):
    doc = parse_ssml('<speak>I say <phoneme alphabet="ipa" ph="təmˈɑːtoʊ">tomato</phoneme>.</speak>')
    part = doc.parts[0]
    prepared = engine.prepare(part.text, SynthesisOptions(pronunciations=part.pronunciations))
    sentence = prepared.sentences[0]
    assert "təmˈɑːtoʊ" in "".join(sentence.phonemes).replace("\u0361", "")
    assert [w for w, _s, _e in sentence.words] == ["I", "say", "tomato"]
    assert prepared.pronunciation_key
