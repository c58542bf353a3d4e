"""The realtime WebSocket's protocol: its documentation (served by ``GET /v1/tts/ws`` and listed
in /docs) and its config frame."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PROTOCOL = """
Client -> server: JSON text frames.

* `{"type": "config", "voice", "language", "format", "sample_rate", "speed", "pitch", "volume",
  "timestamps", "lexicons", "token"}` first (all optional but `type`; format defaults to `pcm`,
  s16le mono). `token`: the API key or bearer token, if not sent as an `Authorization` header.
* `{"type": "text", "text": "..."}` fragments, as an LLM produces them. A sentence is spoken as
  soon as it is complete: its end followed by more text or a space, or "!", "?", "。" at once, or
  "." when no fragment follows within 0.15 s. Long text without an end is cut at a clause.
* `{"type": "flush"}`: speak what is held now; a `done` event follows once all of it is spoken.
* `{"type": "ack", "index": i}`: the client has read sentence `i` (send on each `sentence_end`).
  At most `ws_ack_window_s` (30 s) of audio is sent unacknowledged; then synthesis waits.
* `{"type": "close"}`: flush, send `done`, close with 1000.

Server -> client: binary frames are audio (one continuous stream per segment, a segment being
what lies between two `done`s: WAV sends its header first, PCM is s16le mono at `sample_rate`
from `ready`); JSON text frames are events:

* `{"type": "ready", "session_id", "format"}` after the config;
* `{"type": "sentence_start", "index", "text", "start_s"}` before a sentence's audio;
* `{"type": "word", "index", "word", "start_s", "end_s"}` (seconds from the segment's start);
* `{"type": "sentence_end", "index", "end_s", "sample_rate"}` after its audio;
* `{"type": "done", "url", "key", "duration_s", "sentences"}` after a flush is fully spoken: the
  segment is stored and `url` fetches it;
* `{"type": "error", "code", "message", "field", "index"}`: a sentence that could not be spoken
  (the session goes on), or, just before a close, why.

Close codes: 1000 after `close`; 1001 idle for `ws_idle_timeout_s`; 1003 a binary frame from
the client; 1007 a frame that is not JSON; 1008 a protocol violation (no config first, a bad
config, an unknown type) or a client that reads nothing: the send queue stayed full, or no ack
came, for `ws_send_timeout_s`; 1009 more text held unspoken than `max_text_chars`; 1011 a
server error. A client that disconnects mid-sentence stops its synthesis; nothing half-written
is stored.
"""


class RealtimeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["config"]
    voice: str | None = None
    language: str = "auto"
    format: str = "pcm"
    sample_rate: int | None = None
    speed: float = 1.0
    pitch: float = 0.0
    volume: float = 1.0
    timestamps: bool = True
    lexicons: list[str] = Field(default_factory=list, max_length=8)
    token: str | None = None
