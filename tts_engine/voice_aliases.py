"""Voice names other APIs use, resolved in one place to what we synthesize with.

Clients of other services name voices their way: Azure-style ``zh-CN-XiaoyanNeural``
(the cloud API our seed article describes), CosyVoice's SFT speakers ``中文女``,
GPT-SoVITS's ``spk: default``. Most of these names say only which *language* the
voice speaks, so they resolve to "no explicit voice, language X": an alias whose
value is ``lang:X``. The engine picks the default voice for X (today: the one
default voice; per-language defaults once more languages ship).

``Settings.voice_aliases`` entries win over the defaults here, so any of these names
can be pointed at a specific voice (``{"中文女": "zh_CN-some-voice"}``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tts_engine.settings import Settings

LANGUAGE_PREFIX = "lang:"
# GPT-SoVITS clients (and our seed article) send spk "default" for the built-in voice.
DEFAULT_NAMES = frozenset({"default"})

_AZURE_STYLE = {
    "zh": ("zh-CN-XiaoxiaoNeural", "zh-CN-XiaoyanNeural", "zh-CN-XiaoyiNeural", "zh-CN-XiaohanNeural",
           "zh-CN-XiaomoNeural", "zh-CN-XiaoxuanNeural", "zh-CN-XiaoruiNeural", "zh-CN-XiaochenNeural",
           "zh-CN-YunxiNeural", "zh-CN-YunyangNeural", "zh-CN-YunjianNeural", "zh-CN-YunxiaNeural",
           "zh-CN-YunzeNeural", "zh-CN-YunfengNeural"),
    "en": ("en-US-JennyNeural", "en-US-GuyNeural", "en-US-AriaNeural", "en-US-DavisNeural",
           "en-US-AndrewNeural", "en-US-EmmaNeural", "en-US-BrianNeural", "en-US-AvaNeural",
           "en-US-ChristopherNeural", "en-US-EricNeural", "en-US-MichelleNeural", "en-US-SteffanNeural",
           "en-GB-SoniaNeural", "en-GB-RyanNeural", "en-GB-LibbyNeural"),
    "ja": ("ja-JP-NanamiNeural", "ja-JP-KeitaNeural"),
}
# CosyVoice-300M-SFT's built-in speaker ids (what its clients send as spk_id).
_COSYVOICE_SFT = {"中文女": "zh", "中文男": "zh", "英文女": "en", "英文男": "en", "日语男": "ja",
                  "粤语女": "yue", "韩语女": "ko"}

DEFAULT_VOICE_ALIASES: dict[str, str] = {
    **{name: LANGUAGE_PREFIX + lang for lang, names in _AZURE_STYLE.items() for name in names},
    **{name: LANGUAGE_PREFIX + lang for name, lang in _COSYVOICE_SFT.items()},
}


@dataclass(frozen=True)
class VoiceChoice:
    """What a voice name means: a voice id (None: the default) and the language it implies."""

    voice: str | None
    language: str | None = None


def resolve_voice_name(settings: Settings, name: str | None) -> VoiceChoice:
    """``name`` through ``voice_aliases`` (configured first, then the defaults above).

    Names that are not aliases pass through unchanged (voice ids, registered voice ids,
    OpenAI names, which the voice catalog maps itself).
    """
    if not name:
        return VoiceChoice(None)
    if name in settings.voice_aliases:
        target = settings.voice_aliases[name]
    elif name in DEFAULT_NAMES:
        return VoiceChoice(None)
    else:
        target = DEFAULT_VOICE_ALIASES.get(name, name)
    if target.startswith(LANGUAGE_PREFIX):
        return VoiceChoice(None, target[len(LANGUAGE_PREFIX):] or None)
    return VoiceChoice(target)
