"""Which phonemes of an espeak-ng sentence belong to which written word (Piper voices).

espeak reads a whole clause at once and runs unstressed function words together ("in the" ->
"ɪnðə", "of the" -> "ʌvðə"), so its spaces do not mark our words. Each word is read alone as
well (one espeak call: the words as comma-separated clauses) and the sentence's phonemes are
aligned to the words' by their sounds (``difflib``, stress and punctuation ignored); every
phoneme then belongs to the word whose sound it matched, or to its neighbour within its espeak
word. Spans are what word timestamps (``tts_engine/timestamps.py``) time.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from difflib import SequenceMatcher

# Symbols that carry no sound of their own (stress, punctuation, spaces) are left out of matching.
_NOT_SOUNDS = frozenset(" ˈˌ.,;:!?\"'()-—–…¿¡")
_WORD = re.compile(r"\S+")
_EDGE_PUNCT = "\"'()[]{}«»“”‘’.,;:!?…—–-¿¡"

Phonemizer = Callable[[str], list[str]]  # text -> phoneme strings, one per clause


def text_words(text: str) -> list[str]:
    """The written words of a sentence: whitespace-separated, edge punctuation removed, and only
    those with a letter or digit (a lone "-" is not a word)."""
    words = [w.strip(_EDGE_PUNCT) for w in _WORD.findall(text)]
    # A pronunciation placeholder (Private Use Area) stands for a word.
    return [w for w in words if any(ch.isalnum() or "\ue000" <= ch <= "\uf8ff" for ch in w)]


def word_phonemes(words: Sequence[str], clauses: Phonemizer) -> list[str]:
    """Each word's phonemes read alone: one call with the words as clauses; if espeak cuts them
    differently (a word with a full stop inside), one call per word."""
    if not words:
        return []
    together = clauses(", ".join(words))
    if len(together) == len(words):
        return together
    return ["".join(clauses(word)) for word in words]


def align_words(phonemes: Sequence[str], words: Sequence[str], readings: Sequence[str]) -> list[tuple[str, int, int]]:
    """(word, start, end) spans over ``phonemes`` (a sentence's symbols), in order, not
    overlapping; ``readings[k]`` is ``words[k]`` read alone. A word no sound matched gets an
    empty span where it would be."""
    positions = [i for i, p in enumerate(phonemes) if p not in _NOT_SOUNDS]
    sentence = [phonemes[i] for i in positions]
    spoken: list[str] = []
    owner: list[int] = []
    for k, reading in enumerate(readings):
        sounds = [c for c in unicodedata.normalize("NFD", reading) if c not in _NOT_SOUNDS]
        spoken += sounds
        owner += [k] * len(sounds)
    label: list[int | None] = [None] * len(sentence)
    for block in SequenceMatcher(None, sentence, spoken, autojunk=False).get_matching_blocks():
        for j in range(block.size):
            label[block.a + j] = owner[block.b + j]
    _fill_gaps(label, _espeak_word_of(phonemes, positions))
    return _spans(phonemes, positions, label, words)


def _espeak_word_of(phonemes: Sequence[str], positions: list[int]) -> list[int]:
    """For each sound, the index of the space-separated espeak word it is in."""
    word, out, last = 0, [], 0
    for pos in positions:
        word += sum(1 for p in phonemes[last:pos] if p == " ")
        out.append(word)
        last = pos
    return out


def _fill_gaps(label: list[int | None], espeak_word: list[int]) -> None:
    """Unmatched sounds first go to words nothing matched that sit between their neighbours
    ("a" read alone is "eɪ", in a sentence "ɐ"); the rest join the previous matched sound's word
    within the same espeak word, else the next one's, else the previous label overall."""
    _give_to_missing_words(label, espeak_word)
    for i in range(len(label)):
        if label[i] is None and i and label[i - 1] is not None and espeak_word[i - 1] == espeak_word[i]:
            label[i] = label[i - 1]
    for i in range(len(label) - 2, -1, -1):
        if label[i] is None and label[i + 1] is not None and espeak_word[i + 1] == espeak_word[i]:
            label[i] = label[i + 1]
    previous = 0
    for i, value in enumerate(label):
        label[i] = previous if value is None else value
        previous = label[i]


def _give_to_missing_words(label: list[int | None], espeak_word: list[int]) -> None:
    """An espeak word none of whose sounds matched goes to the written words nothing matched
    between its neighbours' (a run of such espeak words is shared among them, in order)."""
    groups: list[list[int]] = []
    for pos, word in enumerate(espeak_word):
        if groups and espeak_word[groups[-1][0]] == word:
            groups[-1].append(pos)
        else:
            groups.append([pos])
    g = 0
    while g < len(groups):
        if any(label[p] is not None for p in groups[g]):
            g += 1
            continue
        h = g
        while h < len(groups) and all(label[p] is None for p in groups[h]):
            h += 1
        before = max((label[p] for p in groups[g - 1] if label[p] is not None), default=-1) if g else -1
        after = min((label[p] for p in groups[h] if label[p] is not None), default=None) if h < len(groups) else None
        missing = list(range(before + 1, after)) if after is not None else []
        for n, group in enumerate(groups[g:h]):
            if missing:
                for pos in group:
                    label[pos] = missing[min(len(missing) - 1, n * len(missing) // (h - g))]
        g = h


def _spans(phonemes: Sequence[str], positions: list[int], label: list[int | None],
           words: Sequence[str]) -> list[tuple[str, int, int]]:
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for pos, k in zip(positions, label):
        first.setdefault(k, pos)
        last[k] = pos + 1
    spans: list[tuple[str, int, int]] = []
    cursor = 0
    for k, word in enumerate(words):
        start = max(first.get(k, cursor), cursor)
        end = max(last.get(k, start), start)
        # A stress mark just before a word's first sound is part of that word.
        while start > cursor and phonemes[start - 1] in "ˈˌ":
            start -= 1
        spans.append((word, start, end))
        cursor = end
    return spans


def id_spans(phonemes: Sequence[str], id_map: Mapping[str, Sequence[int]],
             spans: Sequence[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Phoneme spans -> spans over the ids ``frontend.phoneme_ids`` builds (BOS, pad, then each
    known symbol's ids followed by a pad, EOS); a word's span ends after its last symbol's pad."""
    pad = len(id_map["_"])
    start_of: list[int] = []
    cursor = len(id_map["^"]) + pad
    for p in phonemes:
        start_of.append(cursor)
        if p in id_map:
            cursor += len(id_map[p]) + pad
    start_of.append(cursor)
    return [(word, start_of[s], start_of[e]) for word, s, e in spans]
