"""Pronunciation lexicons, per tenant, in the store: ``lexicons/{tenant}/{name}.json``.

A lexicon is a list of entries (word or phrase -> IPA, or pinyin with tone numbers); a request
names lexicons and their entries win over the frontend's own reading (``text/pronounce.py``
says how they match). Tenants never see each other's lexicons: the tenant is part of the key.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

from tts_engine.errors import InvalidInput, NotFound, PayloadTooLarge
from tts_engine.text.pronounce import LexiconEntry, check_phonemes

from .base import AudioStore

PREFIX = "lexicons"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_GRAPHEME_CHARS = 100
MAX_LEXICONS_PER_REQUEST = 8


@dataclass(frozen=True)
class Lexicon:
    name: str
    tenant: str
    entries: tuple[LexiconEntry, ...]
    language: str | None
    updated_at: float
    version: str  # content hash of the entries

    def public(self, with_entries: bool = True) -> dict:
        out = {"name": self.name, "language": self.language, "entries_count": len(self.entries),
               "version": self.version, "updated_at": self.updated_at}
        if with_entries:
            out["entries"] = [asdict(e) for e in self.entries]
        return out


def check_name(name: str, field: str = "name") -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidInput(f"{field} must be 1-64 letters, digits, '_' or '-', starting with a letter or digit "
                           f"(got {name!r})", field=field)
    return name


def parse_entries(raw: object, max_entries: int) -> tuple[LexiconEntry, ...]:
    """Validated entries from a request body's ``entries`` list; errors name ``entries[i].field``."""
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("entries must be a non-empty list of {grapheme, phonemes, alphabet?, "
                           "case_sensitive?}", field="entries")
    if len(raw) > max_entries:
        raise PayloadTooLarge(f"a lexicon holds at most {max_entries} entries (got {len(raw)})", field="entries")
    return tuple(_entry(item, f"entries[{i}]") for i, item in enumerate(raw))


def _entry(item: object, where: str) -> LexiconEntry:
    if not isinstance(item, dict):
        raise InvalidInput(f"{where} must be an object", field=where)
    grapheme = unicodedata.normalize("NFC", str(item.get("grapheme", "")).strip())
    if not grapheme or len(grapheme) > MAX_GRAPHEME_CHARS or not any(c.isalnum() for c in grapheme):
        raise InvalidInput(f"{where}.grapheme must be a word or phrase of 1-{MAX_GRAPHEME_CHARS} characters",
                           field=f"{where}.grapheme")
    if any(unicodedata.category(c) in ("Cc", "Co") for c in grapheme):
        raise InvalidInput(f"{where}.grapheme contains control or private-use characters", field=f"{where}.grapheme")
    alphabet = item.get("alphabet", "ipa")
    phonemes = check_phonemes(alphabet, str(item.get("phonemes", "")), f"{where}.phonemes")
    case_sensitive = item.get("case_sensitive", False)
    if not isinstance(case_sensitive, bool):
        raise InvalidInput(f"{where}.case_sensitive must be true or false", field=f"{where}.case_sensitive")
    return LexiconEntry(" ".join(grapheme.split()), alphabet, phonemes, case_sensitive)


class LexiconStore:
    def __init__(self, store: AudioStore) -> None:
        self.store = store

    @staticmethod
    def key(tenant: str, name: str) -> str:
        return f"{PREFIX}/{check_name(tenant, 'tenant')}/{check_name(name)}.json"

    def put(self, tenant: str, name: str, entries: Sequence[LexiconEntry], language: str | None = None) -> Lexicon:
        version = hashlib.sha256(json.dumps([asdict(e) for e in entries], ensure_ascii=False)
                                 .encode()).hexdigest()[:16]
        lexicon = Lexicon(name, tenant, tuple(entries), language, time.time(), version)
        data = {"name": name, "language": language, "updated_at": lexicon.updated_at, "version": version,
                "entries": [asdict(e) for e in entries]}
        self.store.put(self.key(tenant, name), json.dumps(data, ensure_ascii=False).encode(), "application/json")
        return lexicon

    def get(self, tenant: str, name: str, field: str = "name") -> Lexicon:
        try:
            raw = self.store.get(self.key(tenant, name))
        except NotFound:
            raise NotFound(f"no lexicon named {name!r}", field=field) from None
        return _parsed(raw, tenant)

    def delete(self, tenant: str, name: str) -> None:
        key = self.key(tenant, name)
        if not self.store.exists(key):
            raise NotFound(f"no lexicon named {name!r}", field="name")
        self.store.delete(key)

    def list(self, tenant: str) -> list[Lexicon]:
        prefix = f"{PREFIX}/{check_name(tenant, 'tenant')}/"
        out = []
        for key in self.store.list_keys(prefix):
            try:
                out.append(_parsed(self.store.get(key), tenant))
            except NotFound:
                continue  # deleted while listing
        return sorted(out, key=lambda lex: lex.name)

    def entries(self, tenant: str, names: Sequence[str]) -> tuple[LexiconEntry, ...]:
        """The entries of the named lexicons, in the order named (the first one's win)."""
        if len(names) > MAX_LEXICONS_PER_REQUEST:
            raise InvalidInput(f"name at most {MAX_LEXICONS_PER_REQUEST} lexicons", field="lexicons")
        out: list[LexiconEntry] = []
        for i, name in enumerate(names):
            check_name(name, f"lexicons[{i}]")
            out += self.get(tenant, name, field=f"lexicons[{i}]").entries
        return tuple(out)


@lru_cache(maxsize=32)
def _parsed(raw: bytes, tenant: str) -> Lexicon:
    """A stored lexicon (memoized by content: a request naming a large lexicon parses it once)."""
    data = json.loads(raw)
    entries = tuple(LexiconEntry(**e) for e in data["entries"])
    return Lexicon(data["name"], tenant, entries, data.get("language"), data["updated_at"], data["version"])
