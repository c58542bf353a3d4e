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

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

DEFAULT_VOICES = {"en": "en_US-joe-medium", "zh": "kokoro/jf_gongitsune", "ja": "kokoro/jf_alpha"}
OPENAI_VOICE_NAMES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOXSERVE_", extra="ignore")

    # --- voices and synthesis -------------------------------------------------
    default_voices: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_VOICES),
        description="Base language -> the voice a request without 'voice' gets.",
    )
    voices_dir: Path | None = Field(None, description="Extra Piper voices (*.onnx + *.onnx.json).")
    voice_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="Alias -> voice id, or 'lang:xx' for that language's default voice; OpenAI voice "
                    "names not listed get the default voice of the text's language.",
    )
    model_families: list[str] = Field(default_factory=lambda: ["piper", "kokoro"],
                                      description="Model families whose voices this process offers.")
    model_cache_dir: Path = Field(Path.home() / ".cache" / "voxserve",
                                  description="Where model files assembled from wheels are kept.")
    kokoro_backend: Literal["torch", "onnxruntime"] = Field(
        "torch", description="Kokoro runs on our torch port; ONNX Runtime's int8 graph is a CPU option.")
    max_text_chars: int = Field(5000, ge=1)
    max_sentence_chars: int = Field(400, ge=20, description="Longer sentences split at clause boundaries.")
    sentence_pause_s: float = Field(0.25, ge=0.0, le=2.0)
    request_inflight_sentences: int = Field(
        16, ge=1, description="Sentences of one request rendered at once (spread over the Synthesizer replicas); "
                              "a long text sends the rest as these finish, so it never fills the queue that "
                              "concurrent requests share (it was refused 503 at ~160 sentences).")
    clause_pause_s: float = Field(0.05, ge=0.0, le=2.0, description=(
        "Silence between a stream's first clause and the rest of its sentence, where the model renders "
        "them apart for an early first audio (Kokoro): with the edges each piece keeps, ~0.27 s."))
    device: Literal["auto", "cpu", "cuda"] = "auto"
    fp16: bool = Field(False, description="Half precision on CUDA; ignored on CPU.")
    torch_threads: int | None = Field(None, ge=1, description="CPU cores a Synthesizer replica's renders share "
                                      "(None: every core the process may run on; see the performance block).")
    stream_first_chunk_s: float = Field(0.23, ge=0.02, le=2.0, description="Audio in a stream's first chunk.")
    stream_chunk_s: float = Field(0.93, ge=0.02, le=10.0, description="Audio in each later chunk.")
    stream_context_s: float = Field(0.19, ge=0.0, le=2.0,
                                    description="Decoder overlap each side of a chunk; >= its receptive field.")

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
    deploy_cpus: float | None = Field(
        None, gt=0, description="CPUs the deployments' default replica counts are fitted to (None: what Ray "
                                "reports). Set it when several applications share one Ray cluster.")
    synthesizer_num_gpus: float = Field(0.0, ge=0.0, description="GPUs per Synthesizer replica of gpu_families.")
    gpu_families: list[str] = Field(default_factory=lambda: ["kokoro"],
                                    description="Model families whose Synthesizer asks for synthesizer_num_gpus.")

    # --- performance: CPU parallelism (issue 10) -------------------------------------
    # A CPU Synthesizer replica renders up to render_workers sentences at once; each gets
    # torch_threads // (sentences running or waiting) torch threads (tts_engine/parallel.py).
    render_workers: int | None = Field(None, ge=1, description="Sentences a CPU Synthesizer replica renders at "
                                       "once (None: one per core of torch_threads).")
    trim_busy_interval_s: float = Field(
        10.0, ge=0.0, description="A busy Synthesizer replica hands freed memory back to the OS at most this often; "
                                  "each trim costs the next renders page faults (~18% CPU when trimmed before every "
                                  "render).")
    trim_idle_after_s: float = Field(
        1.0, ge=0.0, description="An idle Synthesizer replica hands freed memory back once it has rendered nothing "
                                 "for this long (not between back-to-back requests of one client).")
    cpu_bf16_vocoder: bool = Field(
        True, description="Piper voices' vocoder and Kokoro's decoder (torch backend) in bfloat16 where the CPU has "
                          "native bf16 (AVX512-BF16/AMX; elsewhere float32 regardless): Piper's renders ~1.35x "
                          "faster, Kokoro 0.84x ONNX Runtime int8's time instead of 1.11x, at ~40 dB SNR (Piper) "
                          "and ~0.4 dB log-mel (Kokoro) from float32; Kokoro's Mandarin CER 0.061 instead of "
                          "0.054 (docs/BENCHMARKS.md). false: float32, within 1e-3 of the reference graphs. "
                          "Part of cache keys.")
    cpu_bf16_flow: bool = Field(
        True, description="Piper voices' flow (its WaveNets; the flow's signal stays float32) in bfloat16 too, under "
                          "the same CPU condition as cpu_bf16_vocoder: ~40% less flow time (~10% of a render at one "
                          "thread), at 0.32 dB log-mel from the float32 flow, median SNR 26 dB, the same lengths and "
                          "Whisper WER on 20 sentences (docs/BENCHMARKS.md). Part of cache keys.")
    width_buckets_per_octave: int = Field(
        8, ge=0, le=64, description="Piper voices compute each sentence's token and frame widths rounded up to this "
                                    "many sizes per octave (at most 1/N more work), so oneDNN reuses the convolutions "
                                    "it built for an earlier sentence instead of building ~25 new ones (~15% of a "
                                    "render). 0: exact widths. The audio is the same (masked padding).")
    onednn_primitive_cache: int = Field(
        256, ge=1, description="oneDNN primitives a process whose first model is a Piper voice keeps built "
                               "(ONEDNN_PRIMITIVE_CACHE_CAPACITY, unless the operator set it; read once, at the first "
                               "convolution); other processes (a Kokoro replica: every piece has its own widths, "
                               "nothing to reuse) keep 16. Each holds buffers that grow with its width (~0.5 MB for "
                               "a 4 s sentence's vocoder layers): oneDNN's default 1024 grew a replica to gigabytes "
                               "(issue 9).")

    # --- voice cloning -----------------------------------------------------------
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    reference_min_s: float = Field(3.0, gt=0)
    reference_max_s: float = Field(60.0, gt=0)
    reference_dir: Path | None = Field(None, description="Only place ref_audio_path may point into.")
    speaker_cache_size: int = Field(256, ge=1)

    # --- voice matching on Kokoro (issue 13) ---------------------------------------
    matching_enabled: bool = Field(True, description="Registered voices are fitted Kokoro styles when "
                                   "Kokoro is served (else DSP adaptation only).")
    matching_steps: int = Field(24, ge=1, le=2000, description="Gradient steps of a registration's fit.")
    matching_seconds: float = Field(420.0, gt=0, description="Wall-clock budget of a registration's fit.")
    matching_quick_steps: int = Field(4, ge=1, le=200, description="Steps of an on-the-fly reference's fit.")
    matching_quick_seconds: float = Field(60.0, gt=0, description="Budget of an on-the-fly reference's fit.")
    matching_lr: float = Field(0.12, gt=0, le=1.0, description="Adam step in shipped-style standard deviations.")
    matching_start_packs: list[str] | None = Field(
        None, description="Shipped Kokoro packs a fit may start from (the nearest to the reference is taken); "
        "None: all of them.")
    matching_on_the_fly: Literal["kokoro_voices", "always", "off"] = Field(
        "kokoro_voices", description="reference_audio gets a fitted style when the request's voice is a Kokoro "
        "voice (kokoro_voices), also for requests without a voice (always), or never (off: DSP only).")
    matching_threads: int = Field(1, ge=1, description="torch threads of a fit (the rest stays for synthesis).")
    matching_num_cpus: float = Field(0.5, gt=0, description="CPUs of the VoiceMatcher deployment's replica.")
    matching_num_gpus: float = Field(0.0, ge=0, description="GPUs of the VoiceMatcher replica (fits run there).")

    # --- compatibility adapters (GPT-SoVITS, CosyVoice, the cloud API) -------------
    cosyvoice_sample_rate: int = Field(
        22050, ge=8000, le=48000,
        description="Rate of the CosyVoice routes' headerless PCM (their bundled client plays 22050 Hz).",
    )
    # --- auth, tenants, quotas (issue 11) -----------------------------------------
    auth: Literal["required", "none"] = Field(
        "required", description="required: every API route needs a bearer token or API key; none: open (loopback only)."
    )
    allow_insecure: bool = Field(False, description="Allow auth: none on a non-loopback host (never in production).")
    token_ttl_s: int = Field(7200, ge=60, le=24 * 3600, description="Lifetime of /oauth/token access tokens.")
    token_issuer: str = "voxserve"
    jwt_signing_keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="kid -> HS256 key (>= 32 bytes); empty: generated once into the store."
    )
    jwt_active_kid: str | None = Field(None, description="kid that signs new tokens (default: the newest key).")
    auth_cache_ttl_s: float = Field(5.0, ge=0.0, description="How long a replica trusts a cached client record: "
                                    "revocation takes effect within this time.")
    cache_scope: Literal["global", "tenant"] | None = Field(
        None, description="Phrase-cache sharing; default tenant when auth is on, global when off."
    )
    default_rpm: int = Field(600, ge=1, description="Requests per minute of a client created without --rpm.")
    default_concurrent_streams: int = Field(4, ge=1)
    default_audio_seconds_per_day: float = Field(36000.0, gt=0)
    cache_hit_audio_factor: float = Field(0.1, ge=0.0, le=1.0, description="A cache hit charges this share of its "
                                          "duration against audio_seconds_per_day; a synthesis charges all of it.")
    limiter_lease_max: int = Field(20, ge=1, description="Most request tokens an ingress replica takes per batch.")
    limiter_lease_ttl_s: float = Field(2.0, gt=0, description="Unused leased tokens go back to the limiter after this.")
    usage_flush_s: float = Field(1.0, gt=0, description="How often replicas send usage to the limiter.")
    cors_allow_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS (none: no CORS).")
    body_timeout_s: float = Field(30.0, gt=0, description="Whole request body must arrive within this (408 after).")
    body_idle_timeout_s: float = Field(10.0, gt=0, description="Longest gap between body chunks (408 after).")
    header_timeout_s: float = Field(10.0, gt=0, description="Proxy: a connection must send its request headers "
                                    "within this, or it is closed (see serve_app/edge.py).")
    # --- reliability: bounds on work and storage, claims (issue 9) --------------------
    max_phonemes: int = Field(
        40000, ge=100,
        description="Phoneme ids one request may send to the model, divided by its speed; 413 above. "
                    "About 48 ids make a second of audio, so the default bounds a request to ~14 min of "
                    "audio and passes any ordinary 5000-character English text even at speed 0.5.",
    )
    max_transcript_chars: int = Field(1000, ge=1, description="Registered voices' transcript; 422 above.")
    max_voices_per_owner: int = Field(100, ge=1, description="Registered voices per tenant; 409 above.")
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

    # --- SSML, pronunciation lexicons, realtime WebSocket, playground (issue 14) ----
    lexicon_max_entries: int = Field(5000, ge=1, le=100_000, description="Entries one lexicon may hold.")
    ssml_max_parts: int = Field(100, ge=1, description="Voice/prosody/break changes one SSML document may make.")
    ws_send_queue: int = Field(64, ge=1, description="Messages (audio frames, events) queued per WebSocket "
                                                       "client; when full, synthesis waits.")
    ws_ack_window_s: float = Field(30.0, gt=0, description="Seconds of audio a WebSocket client may leave "
                                                           "unacknowledged before synthesis waits for its acks.")
    ws_send_timeout_s: float = Field(10.0, gt=0, description="How long synthesis waits on a full queue or for an "
                                                             "ack before the client is disconnected (close 1008).")
    ws_idle_timeout_s: float = Field(300.0, gt=0, description="A WebSocket with no message for this long is closed.")

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
        """Map an alias (e.g. an OpenAI voice name) to a voice id or 'lang:xx'; other names pass through.
        An OpenAI voice name that is not aliased means "the default voice", i.e. ''."""
        if name in self.voice_aliases:
            return self.voice_aliases[name]
        if name in OPENAI_VOICE_NAMES:
            return ""
        return name

    @property
    def default_voice(self) -> str:
        """The English default voice (the one every deployment loads first)."""
        return self.default_voices.get("en") or next(iter(self.default_voices.values()))
    @model_validator(mode="after")
    def _refuse_open_without_auth(self) -> "Settings":
        # auth: none is for a loopback dev box; anywhere else it must be asked for explicitly.
        loopback = self.host in ("localhost", "::1") or self.host.startswith("127.")
        if self.auth == "none" and not loopback and not self.allow_insecure:
            raise ValueError(f"auth: none on host {self.host} would let anyone who reaches it use the service; "
                             "set auth: required, bind 127.0.0.1, or set allow_insecure: true explicitly")
        return self

    @property
    def effective_cache_scope(self) -> str:
        """Tenant-scoped phrase cache unless set: cross-tenant hits would leak what others synthesized."""
        return self.cache_scope or ("tenant" if self.auth == "required" else "global")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    return Settings()
