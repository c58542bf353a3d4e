"""The one settings object for VoxServe.

Values come, highest priority first, from: keyword arguments, ``VOXSERVE_*``
environment variables, a YAML file (``VOXSERVE_CONFIG=path.yaml``), then the
defaults below. Nested dicts (``voice_aliases``) take JSON in the environment.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

OPENAI_VOICE_NAMES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOXSERVE_", extra="ignore")

    # --- voices and synthesis -------------------------------------------------
    default_voice: str = "en_US-joe-medium"
    voices_dir: Path | None = Field(None, description="Extra Piper voices (*.onnx + *.onnx.json).")
    voice_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="Alias -> voice id; OpenAI voice names not listed map to default_voice.",
    )
    max_text_chars: int = Field(5000, ge=1)
    max_sentence_chars: int = Field(400, ge=20, description="Longer sentences split at clause boundaries.")
    sentence_pause_s: float = Field(0.25, ge=0.0, le=2.0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    fp16: bool = Field(False, description="Half precision on CUDA; ignored on CPU.")
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads (None: torch default).")
    stream_first_chunk_frames: int = Field(20, ge=4, description="~0.23 s of audio at hop 256 / 22.05 kHz.")
    stream_chunk_frames: int = Field(80, ge=4)
    stream_context_frames: int = Field(16, ge=0, description="Overlap each side; >= vocoder receptive field.")

    # --- storage ----------------------------------------------------------------
    store: str = Field("file:./voxserve_data", description="s3://bucket/prefix or file:///dir")
    cdn_base_url: str | None = None
    presign_expiry_s: int = Field(3600, ge=1, le=7 * 24 * 3600)
    url_signing_key: SecretStr | None = Field(
        None, description="HMAC key for local /media URLs; generated and kept in the store dir if unset."
    )
    public_base_url: str = Field("http://127.0.0.1:8000", description="Base of /media URLs.")
    create_bucket: bool = True
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    s3_multipart_threshold_bytes: int = Field(8 * 1024 * 1024, ge=5 * 1024 * 1024)
    store_retries: int = Field(4, ge=0, le=10)
    store_backoff_s: float = Field(0.1, ge=0.0)
    store_timeout_s: float = Field(5.0, gt=0)
    cache_enabled: bool = True

    # --- serving -----------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    batch_max_size: int = Field(8, ge=1)
    batch_wait_timeout_s: float = Field(0.01, ge=0.0)
    synthesizer_num_gpus: float = Field(0.0, ge=0.0)

    # --- voice cloning -----------------------------------------------------------
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    reference_min_s: float = Field(3.0, gt=0)
    reference_max_s: float = Field(60.0, gt=0)
    reference_dir: Path | None = Field(None, description="Only place ref_audio_path may point into.")
    speaker_cache_size: int = Field(256, ge=1)

    # --- reliability: bounds on work and storage, claims (issue 9) --------------------
    max_phonemes: int = Field(
        40000, ge=100,
        description="Phoneme ids one request may send to the model, divided by its speed; 413 above. "
                    "About 48 ids make a second of audio, so the default bounds a request to ~14 min of "
                    "audio and passes any ordinary 5000-character English text even at speed 0.5.",
    )
    max_transcript_chars: int = Field(1000, ge=1, description="Registered voices' transcript; 422 above.")
    max_voices_per_owner: int = Field(100, ge=1, description="Registered voices per owner; 409 above.")
    claim_ttl_s: float = Field(
        15.0, gt=0, description="A phrase-cache claim not refreshed for this long is a dead owner's; "
                                "owners refresh it every third of this while they synthesize.",
    )
    store_probe_interval_s: float = Field(
        1.0, ge=0.0, description="A stream checks that storage takes writes at most this often per replica.",
    )
    deferred_store_window_s: float = Field(
        300.0, ge=0.0, description="A stream whose storage failed mid-way keeps retrying the write this long.",
    )
    deferred_store_max_bytes: int = Field(
        256 * 1024 * 1024, ge=0, description="Audio held in memory per ingress replica for such retries.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML path is the one variable read outside the model: it says where the rest is.
        yaml_path = os.environ.get("VOXSERVE_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_path:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path))
        return tuple(sources)

    def resolve_voice_alias(self, name: str) -> str:
        """Map an alias (e.g. an OpenAI voice name) to a voice id; other names pass through."""
        if name in self.voice_aliases:
            return self.voice_aliases[name]
        if name in OPENAI_VOICE_NAMES:
            return self.default_voice
        return name


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    return Settings()
