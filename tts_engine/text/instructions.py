"""Free-text style instructions ("speak faster", "用低沉的声音说") read into the controls we have.

CosyVoice's instruct modes take a natural-language instruction for an instruction-
following model. Ours has no such model, but it does have speed, pitch and volume,
so phrases about those are honoured and everything else is reported as ignored
(emotion, dialect, role descriptions). Matching is per clause and by keyword, English
and Chinese; a negation ("not too fast") is not understood and such a clause is
reported as ignored rather than guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# CosyVoice 2/3 instructions end with a special token the model reads; it is not an instruction.
_SPECIAL_TOKEN = re.compile(r"<\|[^|>]*\|>")
_CLAUSE = re.compile(r"[,.;!?\n\uff0c\u3002\uff1b\uff01\uff1f\u3001]+")
_NEGATION = re.compile(r"\b(not|no|don't|never|without)\b|不要|别|不")
_STRONG = re.compile(r"\b(very|much|extremely|really|as \w+ as possible)\b|非常|很|尽可能|特别|极")

# (control, direction, pattern); the first direction a clause matches is used.
_RULES: tuple[tuple[str, int, re.Pattern[str]], ...] = (
    ("speed", +1, re.compile(r"\b(fast|faster|quick|quickly|rapid|rapidly|hurried|brisk)\b|快(?!乐)")),  # 快乐 is "happy"
    ("speed", -1, re.compile(r"\b(slow|slower|slowly|leisurely|unhurried)\b|慢")),
    ("pitch", +1, re.compile(r"\b(high[- ]pitched|higher[- ]pitched|high pitch|higher pitch|higher voice)\b"
                             r"|高音|音调高|音调更高|声音高|尖")),
    ("pitch", -1, re.compile(r"\b(low[- ]pitched|lower[- ]pitched|low pitch|lower pitch|deep|deeper)\b"
                             r"|低音|音调低|低沉|声音低|浑厚")),
    ("volume", +1, re.compile(r"\b(loud|louder|loudly|shout|shouting)\b|大声|响亮|大点声")),
    ("volume", -1, re.compile(r"\b(soft|softly|quiet|quietly|whisper|whispering|gently)\b|小声|轻声|耳语|轻柔")),
)
# (normal, strong) setting per control and direction: noticeable, inside the engine's ranges.
_EFFECTS = {
    ("speed", +1): (1.25, 1.5), ("speed", -1): (0.8, 0.65),
    ("pitch", +1): (3.0, 5.0), ("pitch", -1): (-3.0, -5.0),
    ("volume", +1): (1.3, 1.6), ("volume", -1): (0.6, 0.4),
}


@dataclass(frozen=True)
class Instruction:
    speed: float = 1.0
    pitch: float = 0.0          # semitones
    volume: float = 1.0
    applied: tuple[str, ...] = ()   # "speed=1.25" for each control set
    ignored: tuple[str, ...] = ()   # clauses nothing here understood


def read_instruction(text: str) -> Instruction:
    """The speed/pitch/volume an instruction asks for, what was applied and what was ignored."""
    settings: dict[str, float] = {}
    ignored: list[str] = []
    for clause in _CLAUSE.split(_SPECIAL_TOKEN.sub(" ", text or "")):
        clause = clause.strip()
        if not clause:
            continue
        found = _clause_effects(clause)
        if found is None:
            ignored.append(clause)
            continue
        for control, value in found.items():
            settings.setdefault(control, value)  # the first mention of a control wins
    applied = tuple(f"{name}={value:g}" for name, value in settings.items())
    return Instruction(speed=settings.get("speed", 1.0), pitch=settings.get("pitch", 0.0),
                       volume=settings.get("volume", 1.0), applied=applied, ignored=tuple(ignored))


def _clause_effects(clause: str) -> dict[str, float] | None:
    lowered = clause.lower()
    if _NEGATION.search(lowered):
        return None
    strong = bool(_STRONG.search(lowered))
    effects: dict[str, float] = {}
    for control, direction, pattern in _RULES:
        if control not in effects and pattern.search(lowered):
            effects[control] = _EFFECTS[(control, direction)][strong]
    return effects or None
