"""Turn synthesized audio into response bytes: wav, mp3, opus, flac, aac (ADTS) or raw pcm.

Input everywhere is mono float32 in [-1, 1] plus its sample rate. ``encode``
builds a whole file; ``StreamEncoder`` emits bytes as soon as the codec does,
for chunked HTTP responses. Both share the resampling (soxr) and, for the
compressed formats, one PyAV encoder per codec; ``decode`` reads uploads and
our own output back.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np
import soxr

from tts_engine.errors import InvalidInput, PayloadTooLarge, UnsupportedFormat, UnsupportedMediaType

FORMATS = ("wav", "mp3", "opus", "flac", "pcm", "aac")

CONTENT_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg; codecs=opus",  # Ogg container (RFC 7845), not bare Opus packets
    "flac": "audio/flac",
    # AAC-LC in ADTS framing: every frame carries its own header, so the bytes can be
    # streamed, cut anywhere between frames and concatenated (what GPT-SoVITS's "aac" is).
    "aac": "audio/aac",
    # Raw signed 16-bit *little-endian* mono, no header (what OpenAI's "pcm" is).
    # RFC 2586 L16 is big-endian; we keep the familiar name but clients must read
    # s16le. StreamEncoder.content_type adds the rate, which raw bytes cannot carry.
    "pcm": "audio/L16",
}

# RFC 7845 recommends .opus for Ogg files that hold only Opus.
FILE_EXTENSIONS = {"wav": "wav", "mp3": "mp3", "opus": "opus", "flac": "flac", "pcm": "pcm", "aac": "aac"}

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# The ADTS header's sampling-frequency index table, within our 8-48 kHz range.
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# Formats whose codec only takes some rates; the others take any rate.
_CODEC_RATES = {"opus": OPUS_RATES, "mp3": MP3_RATES, "aac": AAC_RATES}

# (muxer, encoder) for the formats PyAV encodes.
_AV_CODECS = {"mp3": ("mp3", "libmp3lame"), "opus": ("ogg", "libopus"), "flac": ("flac", "flac"),
              "aac": ("adts", "aac")}  # FFmpeg's native AAC-LC encoder; ADTS needs no seeking
# Mono speech: 64 kb/s mp3 and AAC and 32 kb/s Opus are transparent enough for a
# voice and keep streaming responses small.
_BIT_RATES = {"mp3": 64_000, "opus": 32_000, "aac": 64_000}
# The Ogg muxer holds packets until a page spans this long (default 1 s);
# 100 ms pages keep streaming latency low for ~2.5 kb/s of page overhead.
_LIVE_OGG_PAGE_US = 100_000

_PCM16_SCALE = 32767.0
_UNKNOWN_WAV_SIZE = 0xFFFFFFFF
_EMPTY = np.zeros(0, dtype=np.float32)


def check_format(fmt: str) -> str:
    """The canonical (lowercase) format name; UnsupportedFormat if we do not produce it."""
    name = fmt.strip().lower() if isinstance(fmt, str) else ""
    if name not in FORMATS:
        raise UnsupportedFormat(
            f"unsupported response format {fmt!r}; allowed: {', '.join(FORMATS)}", field="format"
        )
    return name


def output_sample_rate(fmt: str, source_rate: int, requested: int | None) -> int:
    """The rate a response in ``fmt`` is encoded at, given the model's rate and the request."""
    fmt = check_format(fmt)
    if source_rate <= 0:
        raise ValueError(f"source_rate must be positive, got {source_rate}")
    allowed = _CODEC_RATES.get(fmt)
    if requested is None:
        return source_rate if allowed is None else _smallest_rate_at_least(source_rate, allowed)
    # bool is an int subclass; True as a sample rate is a client bug, not 1 Hz.
    if isinstance(requested, bool) or not isinstance(requested, (int, np.integer)):
        raise InvalidInput(f"sample_rate must be an integer, got {requested!r}", field="sample_rate")
    if not MIN_SAMPLE_RATE <= requested <= MAX_SAMPLE_RATE:
        raise InvalidInput(
            f"sample_rate must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {requested}",
            field="sample_rate",
        )
    if allowed is not None and requested not in allowed:
        raise InvalidInput(
            f"{fmt} supports sample_rate {', '.join(map(str, allowed))}; got {requested}",
            field="sample_rate",
        )
    return int(requested)


def _smallest_rate_at_least(rate: int, allowed: tuple[int, ...]) -> int:
    # Upsampling loses nothing, so prefer the nearest rate above the source.
    return next((r for r in sorted(allowed) if r >= rate), max(allowed))


def resample(audio: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """``audio`` at ``dst_rate`` (soxr high quality); the input itself when the rates match."""
    samples = _as_mono_float32(audio)
    if src_rate == dst_rate:
        return samples
    return soxr.resample(samples, src_rate, dst_rate, quality="HQ").astype(np.float32, copy=False)


def to_pcm16(audio: np.ndarray) -> bytes:
    """Signed 16-bit little-endian bytes, clipped to [-1, 1] first."""
    samples = np.nan_to_num(_as_mono_float32(audio), nan=0.0, posinf=1.0, neginf=-1.0)
    # Resampling and loudness gain can overshoot 1.0; without the clip int16 wraps around.
    return np.round(np.clip(samples, -1.0, 1.0) * _PCM16_SCALE).astype("<i2").tobytes()


def encode(audio: np.ndarray, sample_rate: int, fmt: str, out_rate: int | None = None) -> bytes:
    """A complete file of ``audio`` in ``fmt``, resampled to ``output_sample_rate``."""
    fmt = check_format(fmt)
    rate = output_sample_rate(fmt, sample_rate, out_rate)
    samples = resample(audio, sample_rate, rate)
    if fmt == "pcm":
        return to_pcm16(samples)
    if fmt == "wav":
        pcm = to_pcm16(samples)
        return wav_header(rate, len(pcm)) + pcm
    # Seekable, so the muxer can go back and fill in what it learns at the end:
    # mp3's Xing/LAME frame (length, encoder delay) and FLAC's STREAMINFO totals.
    file = io.BytesIO()
    codec = _AvCodec(fmt, rate, file, live=False)
    codec.write(samples)
    codec.close()
    return file.getvalue()


def decode(data: bytes, *, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate from a wav/flac/mp3/ogg (or other audio) file.

    Stereo is averaged to mono; the rate is the file's own (Opus always decodes
    at 48 kHz). ``max_seconds`` bounds the decoded length, since a small
    compressed upload can expand to gigabytes of samples.
    """
    try:
        with av.open(io.BytesIO(bytes(data)), mode="r") as container:
            stream = _first_audio_stream(container)
            chunks, rate = _decoded_mono(container, stream, max_seconds)
    except av.FFmpegError as exc:
        raise UnsupportedMediaType("not a decodable audio file (expected wav, flac, mp3 or ogg)") from exc
    if not chunks:
        raise UnsupportedMediaType("the audio file contains no samples")
    return np.concatenate(chunks), rate


def _first_audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream:
    if not container.streams.audio:
        raise UnsupportedMediaType("the file contains no audio stream")
    return container.streams.audio[0]


def _decoded_mono(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    max_seconds: float | None,
) -> tuple[list[np.ndarray], int]:
    chunks: list[np.ndarray] = []
    rate = stream.codec_context.sample_rate or 0
    total = 0
    for frame in _packed_float_frames(container, stream):
        rate = frame.sample_rate
        chunk = _mono(frame)
        total += len(chunk)
        if max_seconds is not None and total > max_seconds * rate:
            raise PayloadTooLarge(f"audio is longer than {max_seconds:g} s")
        chunks.append(chunk)
    return chunks, rate


def _packed_float_frames(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> Iterator[av.AudioFrame]:
    # Packed (interleaved) float, whatever sample format the decoder emits (some switch formats
    # mid-stream): one buffer per frame. Planar frames of 8 or more channels report a wrong plane
    # count in PyAV, and reading them (to_ndarray) crashed the process: an 8-channel WAV upload
    # killed the ingress replica.
    converter = av.AudioResampler(format="flt")
    for frame in container.decode(stream):
        yield from converter.resample(frame)
    yield from converter.resample(None)


def _mono(frame: av.AudioFrame) -> np.ndarray:
    """The plain mean of a packed float frame's channels."""
    channels = max(1, len(frame.layout.channels))
    samples = np.frombuffer(frame.planes[0], dtype=np.float32, count=frame.samples * channels)
    return samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)


class StreamEncoder:
    """Incremental encoder: feed float32 chunks, get bytes out as soon as the codec emits them.

    The response body is ``header() + feed(c1) + ... + finish()``. WAV streams
    carry a header with unknown (0xFFFFFFFF) sizes; mp3 is bare MPEG frames, so
    unlike ``encode`` there is no Xing/LAME frame and decoders keep the encoder
    delay and final-frame padding (up to ~0.1 s at 22 kHz); opus is Ogg pages
    of about 100 ms; flac is FLAC frames after a STREAMINFO without totals.
    """

    def __init__(self, fmt: str, sample_rate: int, out_rate: int | None = None) -> None:
        self.format = check_format(fmt)
        self.sample_rate = sample_rate
        self.out_rate = output_sample_rate(self.format, sample_rate, out_rate)
        self.content_type = _stream_content_type(self.format, self.out_rate)
        self._resampler = _StreamResampler(sample_rate, self.out_rate)
        self._sink = _ByteCollector()
        self._codec = (
            _AvCodec(self.format, self.out_rate, self._sink, live=True)
            if self.format in _AV_CODECS
            else None
        )
        self._finished = False

    def header(self) -> bytes:
        """Bytes that open the stream: the WAV header; empty for other formats."""
        return wav_header(self.out_rate, None) if self.format == "wav" else b""

    def feed(self, chunk: np.ndarray) -> bytes:
        """Encoded bytes ready after this chunk (may be empty while the compressed codecs buffer)."""
        self._check_open()
        return self._encoded(self._resampler.push(chunk))

    def finish(self) -> bytes:
        """The trailing bytes: flushes the resampler and the codec. Call once."""
        self._check_open()
        self._finished = True
        tail = self._encoded(self._resampler.flush())
        if self._codec is None:
            return tail
        self._codec.close()
        return tail + self._sink.take()

    def _encoded(self, samples: np.ndarray) -> bytes:
        if self._codec is None:
            return to_pcm16(samples)
        self._codec.write(samples)
        return self._sink.take()

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError("StreamEncoder already finished")


def _stream_content_type(fmt: str, rate: int) -> str:
    # Raw PCM has no header, so the rate must travel in the media type.
    if fmt == "pcm":
        return f"{CONTENT_TYPES['pcm']}; rate={rate}; channels=1"
    return CONTENT_TYPES[fmt]


WAV_HEADER_BYTES = 44


def wav_header(rate: int, data_bytes: int | None) -> bytes:
    """44-byte PCM s16 mono RIFF header; ``None`` writes the 0xFFFFFFFF 'unknown length'
    that streaming servers use and players read as 'until end of stream'."""
    data_size = _UNKNOWN_WAV_SIZE if data_bytes is None else data_bytes
    riff_size = _UNKNOWN_WAV_SIZE if data_bytes is None else 36 + data_bytes
    channels, bytes_per_sample = 1, 2
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", riff_size, b"WAVE",
        b"fmt ", 16, 1, channels, rate, rate * channels * bytes_per_sample,
        channels * bytes_per_sample, 8 * bytes_per_sample,
        b"data", data_size,
    )


def _as_mono_float32(audio: np.ndarray) -> np.ndarray:
    samples = np.asarray(audio, dtype=np.float32)
    # Accept (n, 1) / (1, n) column or row vectors; real multichannel is a caller bug.
    if samples.ndim == 2 and 1 in samples.shape:
        samples = samples.reshape(-1)
    if samples.ndim != 1:
        raise ValueError(f"expected mono audio as a 1-D array, got shape {samples.shape}")
    return np.ascontiguousarray(samples)


class _StreamResampler:
    """soxr's stateful resampler, so chunk boundaries land mid-filter instead of as clicks."""

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        self._soxr = (
            None
            if src_rate == dst_rate
            else soxr.ResampleStream(src_rate, dst_rate, 1, dtype="float32", quality="HQ")
        )

    def push(self, chunk: np.ndarray) -> np.ndarray:
        samples = _as_mono_float32(chunk)
        return samples if self._soxr is None else self._soxr.resample_chunk(samples)

    def flush(self) -> np.ndarray:
        return _EMPTY if self._soxr is None else self._soxr.resample_chunk(_EMPTY, last=True)


class _ByteCollector:
    """Write-only, non-seekable file for the muxer: having no ``seek`` tells FFmpeg
    not to go back and patch headers, so every byte written is final and can be sent."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class _AvCodec:
    """One PyAV encoder + muxer writing into ``sink``; the single code path for
    mp3, opus, flac and aac, whether streamed (live) or built as a whole file."""

    def __init__(self, fmt: str, rate: int, sink: _ByteCollector | io.BytesIO, live: bool) -> None:
        muxer, codec_name = _AV_CODECS[fmt]
        self._container = av.open(sink, mode="w", format=muxer, options=_muxer_options(fmt, live))
        self._stream = self._container.add_stream(codec_name, rate=rate, layout="mono")
        if fmt in _BIT_RATES:
            self._stream.bit_rate = _BIT_RATES[fmt]
        self._rate = rate
        self._pts = 0

    def write(self, samples: np.ndarray) -> None:
        if samples.size:
            # PyAV re-chunks to the codec's frame size (Opus: 20 ms) and converts
            # to its sample format, holding leftovers until the next write.
            self._mux(self._stream.encode(self._frame(samples)))

    def close(self) -> None:
        self._mux(self._stream.encode(None))
        self._container.close()

    def _frame(self, samples: np.ndarray) -> av.AudioFrame:
        clipped = np.clip(np.nan_to_num(samples), -1.0, 1.0).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(clipped[np.newaxis, :], format="flt", layout="mono")
        frame.sample_rate = self._rate
        frame.time_base = Fraction(1, self._rate)
        frame.pts = self._pts
        self._pts += len(samples)
        return frame

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self._container.mux(packet)


def _muxer_options(fmt: str, live: bool) -> dict[str, str]:
    if fmt == "mp3":
        # No ID3v2 tag: the stream is bare MPEG frames, and the tag only names FFmpeg.
        return {"id3v2_version": "0"}
    if fmt == "opus" and live:
        return {"page_duration": str(_LIVE_OGG_PAGE_US)}
    if fmt == "flac":
        # FFmpeg reserves 8 KiB of PADDING for later tag edits: about a second of compressed speech.
        return {"metadata_header_padding": "0"}
    return {}
