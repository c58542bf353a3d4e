"""Text -> sentences of Kokoro phoneme ids, with the language detected per sentence.

``language: auto`` detects each sentence on its own (a Japanese sentence inside a Chinese text
is read as Japanese, an English one as English); a forced language applies to every sentence. English words inside Chinese
are the Mandarin G2P's business (``zh_g2p``), not this module's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tts_engine.errors import EmptyText, UnsupportedLanguage
from tts_engine.settings import Settings
from tts_engine.text.en_normalize import clean_text
from tts_engine.text.frontend import FrontendResult, Sentence
from tts_engine.text.kokoro_phonemizer import LANGUAGES, KokoroPhonemizer
from tts_engine.text.language import cjk_language, detect_language, resolve_language
from tts_engine.text.pronounce import Pronunciation
from tts_engine.text.split_methods import FIRST_CLAUSE, first_clause_apart, split_text
from tts_engine.text.validation import validate_text


class KokoroFrontend:
    def __init__(self, settings: Settings, vocab: Mapping[str, int]) -> None:
        self.settings = settings
        self.phonemizer = KokoroPhonemizer(vocab)

    def process(self, text: str, language: str = "auto", split: str = "sentence",
                pronunciations: Sequence[Pronunciation] = ()) -> FrontendResult:
        text = validate_text(text, self.settings.max_text_chars)
        resolved = resolve_language(language, text)
        if resolved not in LANGUAGES:
            raise UnsupportedLanguage(
                f"Kokoro voices speak {', '.join(LANGUAGES)}, not '{resolved}'", field="language")
        auto = language is None or language.strip().lower() in ("", "auto")
        cleaned = clean_text(text)
        sentences = []
        for chunk in self._pieces(cleaned, resolved, split):
            lang = _sentence_language(chunk, resolved) if auto else resolved
            out = self.phonemizer.phonemize(chunk, lang, pronunciations)
            if not any(c.isalnum() for c in out.phonemes):
                continue  # punctuation only: nothing to say
            # Kokoro has one id per phoneme symbol, so phoneme spans are id spans.
            sentences.append(Sentence(text=chunk, phonemes=list(out.phonemes), ids=out.ids, dropped=out.dropped,
                                      words=tuple(out.units)))
        if not sentences:
            raise EmptyText("no speakable text remains after normalization", field="text")
        return FrontendResult(language=resolved, normalized_text=cleaned, sentences=sentences)

    def _pieces(self, text: str, language: str, split: str) -> list[str]:
        """Sentences by our own rules, or a client's split method (GPT-SoVITS cut0-cut5); a piece is
        kept within Kokoro's context by the phonemizer's own splitting."""
        limit = self.settings.max_sentence_chars
        if split == "sentence":
            return self.phonemizer.split(text, language, limit)
        if split == FIRST_CLAUSE:
            return first_clause_apart(self.phonemizer.split(text, language, limit))
        pieces = split_text(text, split, limit)
        return [part for piece in pieces
                for part in ([piece] if len(piece) <= limit else self.phonemizer.split(piece, language, limit))]


def _sentence_language(sentence: str, document_language: str) -> str:
    """A sentence's own language when it is one Kokoro speaks, else the document's. Any Chinese or
    Japanese in a sentence makes it that language's: their G2Ps read embedded English words, the
    English G2P cannot read Han or kana."""
    detected = cjk_language(sentence) or detect_language(sentence)
    return detected if detected in LANGUAGES else document_language
