"""Request and response bodies (pydantic); they are also the OpenAPI schema at /docs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from tts_engine.engine import SynthesisOptions


class TTSRequest(BaseModel):
    """POST /v1/tts and /v1/tts/stream (JSON, or the same fields as multipart form fields)."""

    model_config = ConfigDict(extra="ignore")

    text: str = Field(..., description="Text to speak (limit: max_text_chars, default 5000).")
    voice: str | None = Field(None, description="Voice id, registered voice id or alias; default voice if unset.")
    language: str = Field("auto", description="'auto' or a code such as 'en'.")
    format: str = Field("wav", description="wav | mp3 | opus | flac | pcm | aac")
    sample_rate: int | None = Field(None, description="Resample output (8000-48000; opus: 8/12/16/24/48 kHz).")
    speed: float = Field(1.0, description="0.5 to 2.0")
    pitch: float = Field(0.0, description="Semitones, -12 to 12; duration unchanged.")
    volume: float = Field(1.0, description="Gain, 0 to 4 (clipped).")
    seed: int | None = Field(None, description="Same request + seed gives identical audio.")
    noise_scale: float | None = Field(None, description="0 to 2; voice default if unset.")
    noise_w: float | None = Field(None, description="0 to 2; voice default if unset.")
    # Strict: JSON true/false must not pass as speaker 1/0.
    speaker: StrictStr | StrictInt | None = Field(None, description="Speaker name or index for multi-speaker voices.")
    response: Literal["url", "base64", "binary"] = "url"
    cache: bool = Field(True, description="false forces fresh synthesis.")
    # --- word timestamps, SSML, lexicons (issue 14) ---
    timestamps: bool = Field(False, description="Answer word timestamps: 'words' in JSON, 'speech.word' events "
                                                 "when streaming (the stream is then server-sent events).")
    captions: Literal["srt", "vtt"] | None = Field(None, description="Store SRT or WebVTT captions beside the "
                                                                     "audio; answered as 'captions_url'.")
    text_type: Literal["auto", "text", "ssml"] = Field(
        "auto", description="'ssml' parses text as SSML (README: the supported subset); 'auto' does so when it "
                            "starts with <speak>.")
    lexicons: list[str] = Field(default_factory=list, max_length=8,
                                description="Pronunciation lexicons (PUT /v1/lexicons/{name}); the first wins.")

    def options(self, voice: str | None = None) -> SynthesisOptions:
        return SynthesisOptions(
            voice=voice or self.voice, language=self.language, speed=self.speed, noise_scale=self.noise_scale,
            noise_w=self.noise_w, seed=self.seed, volume=self.volume, pitch=self.pitch, speaker=self.speaker,
        )


class Timings(BaseModel):
    frontend_ms: float = 0.0
    synthesis_ms: float = 0.0
    storage_ms: float = 0.0


class WordStamp(BaseModel):
    word: str
    start_s: float
    end_s: float


class TTSResponse(BaseModel):
    audio_url: str
    key: str
    duration_s: float
    sample_rate: int
    format: str
    voice: str
    cached: bool
    request_id: str
    timings: Timings
    audio_base64: str | None = None
    words: list[WordStamp] | None = None
    captions_url: str | None = None


OPENAI_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")


class SpeechRequest(BaseModel):
    """OpenAI-compatible POST /v1/audio/speech."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field("tts-1", description="Accepted for compatibility; any value.")
    input: str
    voice: str = Field("alloy", description="OpenAI names map to configured voices via voice_aliases.")
    response_format: str = "mp3"
    speed: float = Field(1.0, description="0.5 to 2.0 here (OpenAI allows 0.25-4.0).")
    instructions: str | None = Field(None, description="Accepted and ignored.")
    stream_format: Literal["audio", "sse"] = "audio"


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class VoiceAccepted(BaseModel):
    voice_id: str
    status: str
