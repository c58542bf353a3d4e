"""Mandarin (and mixed Mandarin/English) text -> Kokoro v1.0 phonemes.

normalize (zh_normalize) -> script runs: Han / Latin / punctuation / other
 Han:   jieba (with part of speech) -> pypinyin per word (its phrase
        dictionary settles polyphones: 银行 háng, 行走 xíng) -> tone sandhi
        and neutral tones (misaki's ToneSandhi, from PaddleSpeech: 3-3, 一, 不,
        的/了/们...) -> erhua -> misaki's pinyin->IPA table and the arrows
        Kokoro v1.0 uses for tones (misaki legacy zh mode: → ↗ ↓ ↘, none for
        the neutral tone).
 Latin: English words and acronyms through the English path (kokoro_en):
        "GPU" spelled as English letter names, "Python" read by espeak.
 Other scripts (emoji, Hangul, Arabic) are passed on unchanged so the
        phonemizer drops and reports them.

Kokoro v1.0 was trained on misaki's legacy output, which has no erhua
symbol: there 儿 was its own toneless syllable ɚ after the word. An erhua
syllable here is the syllable without its n/i coda followed by ɚ, the same
symbols the model heard for 哪儿.
"""

from __future__ import annotations

import logging
import re
import threading

from tts_engine.text.kokoro_en import EnglishG2P, PhToken
from tts_engine.text.zh_normalize import normalize_zh

__all__ = ["ChineseG2P", "pinyin_to_kokoro", "PUNCT_ZH"]

PUNCT_ZH = {
    "，": ",", "、": ",", "。": ".", "．": ".", "！": "!", "？": "?", "：": ":", "；": ";",
    ",": ",", ".": ".", "!": "!", "?": "?", ":": ":", ";": ";",
    "…": "…", "—": "—", "《": "“", "》": "”", "「": "“", "」": "”", "『": "“", "』": "”",
    "【": "“", "】": "”", "“": "“", "”": "”", "（": "(", "）": ")", "(": "(", ")": ")",
    "〈": "“", "〉": "”", "‘": "", "’": "", "\"": "", "'": "", "·": "", "-": "", "~": "", "/": "",
    "*": "", "_": "",
}

_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3007"
_RUNS = re.compile(
    rf"(?P<han>[{_HAN}]+)"
    r"|(?P<latin>[A-Za-z][A-Za-z'’]*(?:[\s.\-&]+[A-Za-z][A-Za-z'’]*)*)"
    r"|(?P<space>\s+)"
    r"|(?P<other>.)",
    re.S,
)

# From misaki's ZHFrontend (PaddleSpeech): words whose 儿 is a syllable of its own.
_NOT_ERHUA = frozenset(
    "虐儿 为儿 护儿 瞒儿 救儿 替儿 有儿 一儿 我儿 俺儿 妻儿 拐儿 聋儿 乞儿 患儿 幼儿 孤儿 婴儿 "
    "婴幼儿 连体儿 脑瘫儿 流浪儿 体弱儿 混血儿 蜜雪儿 舫儿 祖儿 美儿 应采儿 可儿 侄儿 孙儿 侄孙儿 "
    "女儿 男儿 红孩儿 花儿 虫儿 马儿 鸟儿 猪儿 猫儿 狗儿 少儿 儿子 儿童 儿女 健儿 宠儿 胎儿 "
    "新生儿 孩儿 幸运儿 弄潮儿".split()
)
_MUST_ERHUA = frozenset("小院儿 胡同儿 范儿 老汉儿 撒欢儿 寻老礼儿 妥妥儿 媳妇儿".split())

# Corrections to pypinyin's default choice, applied by whole word.
_PHRASES = {
    "行号": ["hang2", "hao4"], "开户行": ["kai1", "hu4", "hang2"], "各地": ["ge4", "di4"],
    "色差": ["se4", "cha1"], "为准": ["wei2", "zhun3"], "时间为": ["shi2", "jian1", "wei2"],
    "嗯": ["n2"],
}

_lock = threading.Lock()
_sandhi = None


def _tools():
    """jieba + ToneSandhi, loaded once (jieba builds its prefix dictionary, ~1 s)."""
    global _sandhi
    with _lock:
        if _sandhi is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            from misaki.tone_sandhi import ToneSandhi

            _sandhi = ToneSandhi()
    return _sandhi


def pinyin_to_kokoro(syllable: str) -> str:
    """One TONE3 pinyin syllable ("hao3", "de5", erhua "dianr3") -> Kokoro symbols ("xau↓")."""
    from misaki.zh import ZHG2P

    erhua = False
    m = re.fullmatch(r"([a-zü:v]+?)(r?)([1-5])", syllable)
    if not m:
        return ""
    base, r, tone = m.groups()
    base = base.replace("u:", "ü").replace("v", "ü")
    if r and base not in ("e",):
        erhua = True
        # The coda gives way to the r-colouring: 点儿 dianr -> dia+r, 玩儿 wanr, 一块儿 kuair.
        if base.endswith("n") and not base.endswith("ng"):
            base = base[:-1]
        elif base.endswith(("ai", "ei", "ui")) and len(base) > 1:
            base = base[:-1]
        base = base or "e"
    elif r:
        base = "er"
    try:
        ps = ZHG2P.py2ipa(base + tone)
    except (ValueError, AssertionError, KeyError):
        try:
            ps = ZHG2P.py2ipa(base + "5")
        except (ValueError, AssertionError, KeyError):
            return ""
    ps = ps.replace(chr(815), "")
    return ps + "ɚ" if erhua else ps


def _syllable_phonemes(syllable: str) -> str:
    """pinyin_to_kokoro, or the character itself when pypinyin had no reading for it."""
    ps = pinyin_to_kokoro(syllable)
    if ps or re.fullmatch(r"[a-zü:v]+[1-5]", syllable):
        return ps
    return syllable


# What may follow a reduplication inside one jieba word and keep it one: 妈妈们, 宝宝的, 星星儿.
_REDUPLICATION_SUFFIXES = set("们儿的地得子")


def _sandhi_pos(word: str, pos: str) -> str:
    """The part of speech the neutral-tone rules see. Their reduplication rule (奶奶, 看看: second
    syllable neutral) fires on any repeated character of a noun/verb/adjective word, but jieba
    keeps longer words whose repeat only meets across a word edge (银行|行长 -> "hang5 zhang3",
    好好|学习); and their locative rule (桌上 -> "shang5") fires on four-character idioms that
    end in 上/下 as a direction (天天向上, 七上八下). There the word is shown as a status word
    ("z"), which no neutral-tone rule of a plain word matches."""
    repeats = any(word[j] == word[j - 1] for j in range(1, len(word)))
    if repeats and len(word) > 2 and not _is_reduplication(word):
        return "z"
    if pos == "l" and len(word) >= 4 and word[-1] in "上下":
        return "z"
    return pos


def _is_reduplication(word: str) -> bool:
    """AA, AABB (高高兴兴), or AA with a suffix (妈妈们)."""
    if len(word) == 4 and word[0] == word[1] and word[2] == word[3]:
        return True
    return word[0] == word[1] and all(ch in _REDUPLICATION_SUFFIXES for ch in word[2:])


class ChineseG2P:
    """Mandarin text (one sentence or clause; may contain English) -> Kokoro tokens."""

    def __init__(self, english: EnglishG2P | None = None, erhua: bool = True, aspirate_english: bool = True) -> None:
        self.english = english or EnglishG2P()
        self.erhua = erhua
        self.aspirate_english = aspirate_english

    # -- pinyin ---------------------------------------------------------
    def word_pinyin(self, word: str, pos: str) -> list[str]:
        """TONE3 syllables of one jieba word after sandhi and erhua ("一点儿" -> yi4 dian3r)."""
        from pypinyin import Style, lazy_pinyin

        sandhi = _tools()
        if word in _PHRASES:
            syllables = list(_PHRASES[word])
        elif word == "地" and pos in ("uv", "ud"):
            syllables = ["de5"]  # the adverbial particle: 慢慢地
        else:
            syllables = lazy_pinyin(word, style=Style.TONE3, neutral_tone_with_five=True, errors=lambda s: list(s))
        if len(syllables) != len(word):
            return syllables
        for i, ch in enumerate(word):
            if ch == "嗯":
                syllables[i] = "n2"
        syllables = sandhi.modified_tone(word, _sandhi_pos(word, pos), syllables)
        if self.erhua:
            syllables = self._erhua(word, pos, syllables)
        return syllables

    def _erhua(self, word: str, pos: str, syllables: list[str]) -> list[str]:
        if len(word) < 2 or word[-1] != "儿" or len(syllables) != len(word):
            return syllables
        if word not in _MUST_ERHUA and (word in _NOT_ERHUA or word[-2:] in _NOT_ERHUA or pos in {"a", "j", "nr"}):
            return syllables
        if syllables[-1] not in ("er2", "er5", "er1"):
            return syllables
        prev = syllables[-2]
        if not prev[-1].isdigit():
            return syllables
        return syllables[:-2] + [prev[:-1] + "r" + prev[-1]]

    def pinyin(self, text: str) -> list[str]:
        """Syllables of a normalized Han run, for tests and the benchmark."""
        return [s for _w, syl in self._han_words(text) for s in syl]

    def _han_words(self, run: str) -> list[tuple[str, list[str]]]:
        import jieba.posseg as psg

        sandhi = _tools()
        seg = [(p.word, p.flag) for p in psg.lcut(run)]
        try:
            seg = sandhi.pre_merge_for_modify(seg)
        except Exception:  # a merge heuristic failing must not lose the text
            pass
        # jieba's dictionary has words such as 地走了; after an adverb (慢慢) 地 is the particle.
        fixed: list[tuple[str, str]] = []
        for w, pos in seg:
            if len(w) > 1 and w[0] == "地" and fixed and fixed[-1][1] == "d":
                fixed += [("地", "uv"), (w[1:], pos)]
            else:
                fixed.append((w, pos))
        return [(w, self.word_pinyin(w, pos)) for w, pos in fixed if w.strip()]

    # -- tokens ---------------------------------------------------------
    def tokens(self, text: str, normalize: bool = True) -> list[PhToken]:
        if normalize:
            text = normalize_zh(text)
        out: list[PhToken] = []
        for m in _RUNS.finditer(text):
            kind = m.lastgroup
            piece = m[0]
            if kind == "han":
                for word, syllables in self._han_words(piece):
                    # A character without a reading stays as itself: dropped and reported.
                    readings = [_syllable_phonemes(s) for s in syllables]
                    out.append(PhToken(word, "".join(readings), parts=_character_parts(word, readings)))
            elif kind == "latin":
                out.extend(self._latin(piece))
            elif kind == "other":
                mark = PUNCT_ZH.get(piece)
                if mark is not None:
                    if mark:
                        out.append(PhToken(piece, mark, punct=True))
                else:
                    out.append(PhToken(piece, piece))  # unknown: the phonemizer drops and reports it
        return _merge_ellipses(out)

    def _latin(self, run: str) -> list[PhToken]:
        words = re.findall(r"[A-Za-z][A-Za-z'’]*", run)
        if len(words) == 1:
            toks = [PhToken(words[0], self.english.word(words[0]))]
        else:
            toks = [t for t in self.english.tokens(" ".join(words), normalize=False) if not t.punct]
        if self.aspirate_english:
            toks = [PhToken(t.text, aspirate(t.phonemes), t.punct) for t in toks]
        return toks


_VOWEL = "AIOWYaeiouæɑɐɒɔəɛɜɪʊʌᵊ"
_ASPIRABLE = re.compile(rf"(?<!s)([ptk])(?=[ˈˌ][{_VOWEL}])|^([ptk])(?=[{_VOWEL}])")


def aspirate(ps: str) -> str:
    """English p t k at the start of a word or stressed syllable written pʰ tʰ kʰ.

    In English they are aspirated there; among Mandarin syllables Kokoro writes
    unaspirated b d g as p t k, so an unmarked English p inside Chinese is
    heard as b ("API" -> "ABI", "Python" -> "bai...").
    """
    return _ASPIRABLE.sub(lambda m: m[0] + "ʰ", ps)


def _character_parts(word: str, readings: list[str]) -> tuple[tuple[str, str], ...]:
    """(character, its syllable's phonemes) for each character of a Han word; an erhua syllable
    (one syllable fewer than characters) keeps its 儿 with the character before it."""
    if len(readings) == len(word):
        return tuple(zip(word, readings))
    if len(readings) == len(word) - 1 and word.endswith("儿") and readings:
        return tuple(zip(word[:-2], readings[:-1])) + ((word[-2:], readings[-1]),)
    return ()


def _merge_ellipses(tokens: list[PhToken]) -> list[PhToken]:
    """"……" and "——" come as two marks; Kokoro wants one."""
    out: list[PhToken] = []
    for tok in tokens:
        if tok.punct and out and out[-1].punct and out[-1].phonemes == tok.phonemes and tok.phonemes in "…—":
            out[-1] = PhToken(out[-1].text + tok.text, tok.phonemes, punct=True)
            continue
        out.append(tok)
    return out
