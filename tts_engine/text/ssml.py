"""SSML, a documented subset, parsed into parts of plain text with their voice and prosody.

Supported (README "SSML"): ``<speak>``, ``<p>``, ``<s>``, ``<break time|strength>``,
``<prosody rate pitch volume>``, ``<say-as interpret-as="characters|cardinal|ordinal|digits|
date|telephone">``, ``<sub alias>``, ``<phoneme alphabet="ipa|pinyin" ph>``, ``<lang xml:lang>``,
``<voice name>``. Any other element contributes its text and a warning. The XML is read with
defusedxml's SAX parser: no DTD, no entities, no external references (a billion-laughs or
XXE document is refused like any malformed one). Errors raise :class:`InvalidSsml` (422) naming
the element and its line and column.

A *part* is a stretch of text with one voice, language and prosody; a ``<break>``, a paragraph
end or a change of voice/language/prosody starts the next one. ``<phoneme>`` readings become
pronunciation placeholders in the part's text (``text/pronounce.py``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler

from tts_engine.errors import InvalidInput
from tts_engine.text import say_as
from tts_engine.text.language import cjk_language, resolve_language
from tts_engine.text.pronounce import Pronunciation, check_phonemes, placeholder, strip_placeholders

MAX_ELEMENTS = 5000
MAX_DEPTH = 40
MAX_BREAK_S = 10.0
PARAGRAPH_PAUSE_S = 0.5
BREAK_STRENGTHS = {"none": 0.0, "x-weak": 0.1, "weak": 0.2, "medium": 0.4, "strong": 0.7, "x-strong": 1.0}
RATES = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25, "x-fast": 1.5}
PITCHES = {"x-low": -6.0, "low": -3.0, "medium": 0.0, "default": 0.0, "high": 3.0, "x-high": 6.0}
VOLUMES = {"silent": 0.0, "x-soft": 0.25, "soft": 0.5, "medium": 1.0, "default": 1.0, "loud": 1.5, "x-loud": 2.0}
RATE_RANGE, PITCH_RANGE, VOLUME_RANGE = (0.5, 2.0), (-12.0, 12.0), (0.0, 4.0)
KNOWN = frozenset("speak p s break prosody say-as sub phoneme lang voice".split())
_SENTENCE_END = tuple(".!?。！？…")


class InvalidSsml(InvalidInput):
    code = "invalid_ssml"


@dataclass(frozen=True)
class Prosody:
    rate: float = 1.0      # speed multiplier
    pitch: float = 0.0     # semitones
    volume: float = 1.0    # gain


@dataclass(frozen=True)
class SsmlPart:
    text: str                                   # plain text; <phoneme>s as placeholders
    pronunciations: tuple[Pronunciation, ...]   # what the placeholders index
    voice: str | None
    language: str | None
    prosody: Prosody
    break_before_s: float                       # silence before this part


@dataclass
class SsmlDocument:
    parts: list[SsmlPart]
    trailing_break_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(p.text for p in self.parts)


def looks_like_ssml(text: str) -> bool:
    """A text that opts into SSML by itself: it starts with ``<speak`` (after an XML declaration)."""
    head = text.lstrip()
    if head.startswith("<?xml"):
        head = head[head.find("?>") + 2:].lstrip() if "?>" in head else head
    return head.startswith("<speak") and head[6:7] in (">", " ", "\t", "\n", "\r", "/")


# ---------------------------------------------------------------------------------- the tree


@dataclass
class _Node:
    tag: str
    attrs: dict[str, str]
    line: int
    column: int
    children: list["_Node | str"] = field(default_factory=list)

    def where(self) -> str:
        return f"<{self.tag}> at line {self.line}, column {self.column}"

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)


class _TreeBuilder(ContentHandler):
    def __init__(self) -> None:
        super().__init__()
        self.root: _Node | None = None
        self.stack: list[_Node] = []
        self.count = 0

    def startElement(self, name: str, attrs) -> None:  # noqa: N802 - SAX's name
        locator = self._locator
        line, column = (locator.getLineNumber(), locator.getColumnNumber() + 1) if locator else (0, 0)
        node = _Node(name, dict(attrs.items()), line, column)
        self.count += 1
        if self.count > MAX_ELEMENTS:
            raise InvalidSsml(f"SSML has more than {MAX_ELEMENTS} elements", field="text")
        if len(self.stack) >= MAX_DEPTH:
            raise InvalidSsml(f"{node.where()}: SSML nests deeper than {MAX_DEPTH} elements", field="text")
        if self.stack:
            self.stack[-1].children.append(node)
        else:
            self.root = node
        self.stack.append(node)

    def endElement(self, name: str) -> None:  # noqa: N802
        self.stack.pop()

    def characters(self, content: str) -> None:
        if self.stack:
            self.stack[-1].children.append(content)


def _tree(document: str) -> _Node:
    import defusedxml.sax
    from defusedxml import DefusedXmlException

    builder = _TreeBuilder()
    try:
        defusedxml.sax.parseString(document.encode("utf-8"), builder, forbid_dtd=True,
                                   forbid_entities=True, forbid_external=True)
    except SAXParseException as exc:
        raise InvalidSsml(f"invalid SSML at line {exc.getLineNumber()}, column {exc.getColumnNumber() + 1}: "
                          f"{exc.getMessage()}", field="text") from None
    except DefusedXmlException as exc:
        raise InvalidSsml(f"SSML must not contain a DTD, entity declarations or external references "
                          f"({type(exc).__name__})", field="text") from None
    if builder.root is None or builder.root.tag != "speak":
        tag = builder.root.tag if builder.root else "nothing"
        raise InvalidSsml(f"SSML must have <speak> as its root element (found <{tag}>)", field="text")
    return builder.root


# ---------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Context:
    voice: str | None
    language: str | None
    prosody: Prosody


class _Builder:
    """Walks the tree, cutting parts where voice, language or prosody change and at breaks."""

    def __init__(self, language: str | None, max_parts: int, text_language: str) -> None:
        self.context = _Context(None, language, Prosody())
        self.text_language = text_language  # say-as reads in the document's language unless <lang> says
        self.max_parts = max_parts
        self.parts: list[SsmlPart] = []
        self.buffer: list[str] = []
        self.pronunciations: list[Pronunciation] = []
        self.pending_break = 0.0
        self.warnings: list[str] = []

    # -- output
    def flush(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self.buffer)).strip()
        text = re.sub(r"\s+(?=[,.!?;:。，、！？；：])", "", text)  # the spaces set around say-as output
        if text and any(ch.isalnum() or "\ue000" <= ch <= "\uf8ff" for ch in text):
            if len(self.parts) >= self.max_parts:
                raise InvalidSsml(f"SSML makes more than {self.max_parts} parts (voice, prosody or language "
                                  f"changes and breaks)", field="text")
            self.parts.append(SsmlPart(text, tuple(self.pronunciations), self.context.voice,
                                       self.context.language, self.context.prosody, self.pending_break))
            self.pending_break = 0.0
        self.buffer, self.pronunciations = [], []

    def pause(self, seconds: float) -> None:
        self.flush()
        self.pending_break += seconds

    def end_sentence(self) -> None:
        text = "".join(self.buffer).rstrip()
        if text and not text.endswith(_SENTENCE_END):
            self.buffer.append("。" if say_as.is_cjk(text[-1]) else ".")
        self.buffer.append(" ")

    # -- walking
    def walk(self, node: _Node) -> None:
        for child in node.children:
            if isinstance(child, str):
                self.buffer.append(strip_placeholders(child))
            else:
                self.element(child)

    def within(self, node: _Node, context: _Context) -> None:
        """Children of ``node`` under another context: a part boundary on both sides if it differs."""
        if context == self.context:
            self.walk(node)
            return
        self.flush()
        outer, self.context = self.context, context
        self.walk(node)
        self.flush()
        self.context = outer

    def element(self, node: _Node) -> None:
        handler = getattr(self, "_" + node.tag.replace("-", "_"), None) if node.tag in KNOWN else None
        if handler is None:
            self.warnings.append(f"unknown element <{node.tag}> at line {node.line}, column {node.column}: "
                                 f"its text was read, the element ignored")
            self.walk(node)
        else:
            handler(node)

    def _speak(self, node: _Node) -> None:
        self.walk(node)

    def _s(self, node: _Node) -> None:
        self.walk(node)
        self.end_sentence()

    def _p(self, node: _Node) -> None:
        self.walk(node)
        self.end_sentence()
        self.pause(PARAGRAPH_PAUSE_S)

    def _break(self, node: _Node) -> None:
        self.pause(break_seconds(node))

    def _prosody(self, node: _Node) -> None:
        self.within(node, replace(self.context, prosody=prosody_of(node, self.context.prosody)))

    def _voice(self, node: _Node) -> None:
        name = _required(node, "name")
        self.within(node, replace(self.context, voice=name))

    def _lang(self, node: _Node) -> None:
        code = _required(node, "xml:lang")
        self.within(node, replace(self.context, language=_language(node, code)))

    def _sub(self, node: _Node) -> None:
        self.buffer.append(strip_placeholders(_required(node, "alias")))

    def _say_as(self, node: _Node) -> None:
        kind = _required(node, "interpret-as")
        try:
            said = say_as.render(strip_placeholders(node.text()), kind, node.attrs.get("format"),
                                 self.context.language or self.text_language)
            self.buffer.append(said if said and say_as.is_cjk(said[0]) else " " + said + " ")
        except ValueError as exc:
            raise InvalidSsml(f"{node.where()}: {exc}", field="text") from None

    def _phoneme(self, node: _Node) -> None:
        alphabet = node.attrs.get("alphabet", "ipa").lower()
        if alphabet in ("x-pinyin", "pinyin"):
            alphabet = "pinyin"
        ph = _required(node, "ph")
        try:
            ph = check_phonemes(alphabet, ph, "text")
        except InvalidInput as exc:
            raise InvalidSsml(f"{node.where()}: {exc.message}", field="text") from None
        written = re.sub(r"\s+", " ", strip_placeholders(node.text())).strip() or ph
        # Inline readings come first in the table (placeholders 0..n-1), see pronounce.mark.
        self.buffer.append(" " + placeholder(len(self.pronunciations)) + " ")
        self.pronunciations.append(Pronunciation(written, alphabet, ph))


def _required(node: _Node, attr: str) -> str:
    value = node.attrs.get(attr, "").strip()
    if not value:
        raise InvalidSsml(f"{node.where()}: the '{attr}' attribute is required", field="text")
    return value


def _language(node: _Node, code: str) -> str:
    try:
        resolve_language(code, "")
    except InvalidInput as exc:
        raise InvalidSsml(f"{node.where()}: {exc.message}", field="text") from None
    return code


_TIME = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s)")


def break_seconds(node: _Node) -> float:
    time_attr = node.attrs.get("time")
    if time_attr is not None:
        m = _TIME.fullmatch(time_attr.strip())
        if not m:
            raise InvalidSsml(f"{node.where()}: time must look like '500ms' or '1.5s' (got {time_attr!r})",
                              field="text")
        seconds = float(m[1]) / (1000 if m[2] == "ms" else 1)
        if seconds > MAX_BREAK_S:
            raise InvalidSsml(f"{node.where()}: a break is at most {MAX_BREAK_S:g}s (got {time_attr})", field="text")
        return seconds
    strength = node.attrs.get("strength", "medium")
    if strength not in BREAK_STRENGTHS:
        raise InvalidSsml(f"{node.where()}: strength must be one of {', '.join(BREAK_STRENGTHS)} "
                          f"(got {strength!r})", field="text")
    return BREAK_STRENGTHS[strength]


def prosody_of(node: _Node, outer: Prosody) -> Prosody:
    """The prosody inside ``node``: rate and volume multiply the outer ones, pitch adds."""
    rate = outer.rate * _value(node, "rate", RATES, _rate)
    pitch = outer.pitch + _value(node, "pitch", PITCHES, _pitch)
    volume = outer.volume * _value(node, "volume", VOLUMES, _volume)
    for name, value, (lo, hi) in (("rate", rate, RATE_RANGE), ("pitch", pitch, PITCH_RANGE),
                                  ("volume", volume, VOLUME_RANGE)):
        if not lo <= value <= hi:
            raise InvalidSsml(f"{node.where()}: {name} comes to {value:.3g}, outside {lo:g} to {hi:g}", field="text")
    return Prosody(round(rate, 6), round(pitch, 6), round(volume, 6))


def _value(node: _Node, attr: str, named: dict[str, float], parse) -> float:
    raw = node.attrs.get(attr)
    if raw is None:
        return named["default"]
    raw = raw.strip()
    if raw in named:
        return named[raw]
    try:
        return parse(raw)
    except (ValueError, ZeroDivisionError):
        raise InvalidSsml(f"{node.where()}: {attr} {raw!r} is not understood; use {', '.join(named)} or "
                          f"{_FORMS[attr]}", field="text") from None


_FORMS = {"rate": "a percentage (80%, +20%) or a multiplier (1.2)",
          "pitch": "semitones (+2st, -3st) or a percentage (+10%)",
          "volume": "decibels (+6dB, -3dB)"}
_NUMBER = r"([+-]?\d+(?:\.\d+)?)"


def _rate(raw: str) -> float:
    if m := re.fullmatch(_NUMBER + "%", raw):
        signed = raw[0] in "+-"
        return 1 + float(m[1]) / 100 if signed else float(m[1]) / 100
    return float(raw)


def _pitch(raw: str) -> float:
    if m := re.fullmatch(_NUMBER + "st", raw):
        return float(m[1])
    if m := re.fullmatch(_NUMBER + "%", raw):
        return 12 * math.log2(1 + float(m[1]) / 100)
    raise ValueError(raw)


def _volume(raw: str) -> float:
    if m := re.fullmatch(_NUMBER + "dB", raw):
        return 10 ** (float(m[1]) / 20)
    raise ValueError(raw)


def parse_ssml(document: str, max_parts: int = 100) -> SsmlDocument:
    """The document's parts (at least one; 422 if it has no speakable text)."""
    root = _tree(document)
    language = root.attrs.get("xml:lang") and _language(root, root.attrs["xml:lang"])
    builder = _Builder(language, max_parts, cjk_language(root.text()) or "en")
    builder.walk(root)
    builder.flush()
    if not builder.parts:
        raise InvalidSsml("the SSML document has no text to speak", field="text")
    return SsmlDocument(builder.parts, builder.pending_break, builder.warnings)
