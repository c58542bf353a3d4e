"""The voice catalog: every family's voices, what each speaks, and which one a request gets.

Listing voices is cheap: families describe their voices from small config files and never
load weights here. A request without a voice gets the default voice of its language
(``settings.default_voices``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tts_engine.errors import InvalidInput, UnknownVoice, UnsupportedLanguage
from tts_engine.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from tts_engine.models.protocol import ModelFamily


@dataclass(frozen=True)
class VoiceInfo:
    id: str
    model_path: Path
    sample_rate: int
    language: str                      # the speaker's own language, e.g. "en_US", "ja"
    family: str = "piper"
    spoken: tuple[str, ...] = ()       # base language codes it can speak; () = its own language only
    espeak_voice: str = "en-us"        # Piper: the espeak-ng voice of its phoneme set
    phoneme_id_map: dict[str, list[int]] = field(default_factory=dict, repr=False)
    speakers: dict[str, int] = field(default_factory=dict)  # name -> id (multi-speaker voices)
    noise_scale: float = 0.667
    length_scale: float = 1.0
    noise_w: float = 0.8
    quality: str | None = None
    note: str | None = None            # what a user should know (e.g. the speakers' accent)

    @property
    def languages(self) -> list[str]:
        """Base language codes this voice speaks ("en" for "en_US")."""
        return list(self.spoken) or [self.language.split("_")[0].split("-")[0].lower()]

    @property
    def num_speakers(self) -> int:
        return max(1, len(self.speakers))

    def speaker_id(self, speaker: str | int | None) -> int | None:
        """Resolve a speaker name or index; None for single-speaker voices."""
        if not self.speakers:
            if speaker not in (None, 0, "0"):
                raise InvalidInput(f"voice '{self.id}' has a single speaker", field="speaker")
            return None
        if speaker is None:
            return 0
        if isinstance(speaker, str) and speaker in self.speakers:
            return self.speakers[speaker]
        try:
            index = int(speaker)
        except (TypeError, ValueError):
            index = -1
        if 0 <= index < self.num_speakers:
            return index
        raise InvalidInput(
            f"unknown speaker {speaker!r} for voice '{self.id}' (names: {sorted(self.speakers)[:20]}, "
            f"or an index 0..{self.num_speakers - 1})",
            field="speaker",
        )

    def describe(self) -> dict:
        data = {
            "id": self.id,
            "kind": "builtin",
            "family": self.family,
            "languages": self.languages,
            "language": self.language,
            "sample_rate": self.sample_rate,
            "speakers": sorted(self.speakers, key=self.speakers.get),
            "quality": self.quality,
        }
        if self.note:
            data["note"] = self.note
        return data


def read_piper_voice(model_path: Path) -> VoiceInfo:
    """VoiceInfo from ``<name>.onnx`` and its ``<name>.onnx.json``."""
    config_path = model_path.with_name(model_path.name + ".json")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    inference = config.get("inference", {})
    language = config.get("language", {}).get("code") or config.get("espeak", {}).get("voice", "en")
    return VoiceInfo(
        id=model_path.name.removesuffix(".onnx"),
        model_path=model_path,
        sample_rate=int(config["audio"]["sample_rate"]),
        language=language,
        family="piper",
        espeak_voice=config.get("espeak", {}).get("voice", "en-us"),
        phoneme_id_map=config["phoneme_id_map"],
        speakers=dict(config.get("speaker_id_map") or {}) if config.get("num_speakers", 1) > 1 else {},
        noise_scale=float(inference.get("noise_scale", 0.667)),
        length_scale=float(inference.get("length_scale", 1.0)),
        noise_w=float(inference.get("noise_w", 0.8)),
        quality=config.get("audio", {}).get("quality"),
    )


class VoiceCatalog:
    """All families' voices; a later voice never overrides an earlier id."""

    def __init__(self, settings: Settings, families: "dict[str, ModelFamily] | None" = None) -> None:
        from tts_engine.models.registry import model_families

        self.settings = settings
        self.families = families if families is not None else model_families(settings)
        self._voices: dict[str, VoiceInfo] = {}
        for family in self.families.values():
            for info in family.voices():
                self._voices.setdefault(info.id, info)

    def ids(self) -> list[str]:
        return list(self._voices)

    def list(self) -> list[VoiceInfo]:
        return list(self._voices.values())

    def get(self, voice_id: str | None, language: str | None = None) -> VoiceInfo:
        """The voice for an id or alias (OpenAI names included); None picks ``language``'s default."""
        if not voice_id:
            return self.default_for(language or "en")
        name = self.settings.resolve_voice_alias(voice_id)
        if not name:
            return self.default_for(language or "en")
        if name.startswith("lang:"):
            return self.default_for(name.removeprefix("lang:"))
        try:
            return self._voices[name]
        except KeyError:
            raise UnknownVoice(
                f"unknown voice '{voice_id}'; available: {', '.join(self._voices)}", field="voice"
            ) from None

    def default_for(self, language: str) -> VoiceInfo:
        """The configured default voice of a base language; 422 naming the languages we speak."""
        voice_id = self.settings.default_voices.get(language)
        if voice_id is None or voice_id not in self._voices:
            spoken = sorted({lang for v in self._voices.values() for lang in v.languages})
            raise UnsupportedLanguage(
                f"no voice speaks '{language}'; supported languages: {', '.join(spoken)}", field="language")
        return self._voices[voice_id]

    def speaking(self, language: str) -> list[str]:
        """Ids of the voices that speak a base language code."""
        return [v.id for v in self._voices.values() if language in v.languages]
