"""Encoders: round trips through every format, streaming output, rate rules, errors."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from tts_engine.audio.encoders import (
    CONTENT_TYPES,
    FILE_EXTENSIONS,
    FORMATS,
    StreamEncoder,
    check_format,
    decode,
    encode,
    output_sample_rate,
    resample,
    to_pcm16,
)
from tts_engine.errors import InvalidInput, PayloadTooLarge, UnsupportedFormat, UnsupportedMediaType

SR = 22050
TONE_HZ = 440.0
# Codec priming and last-frame padding that decoders may not trim.
DURATION_TOLERANCE_S = 0.06
# Streamed mp3 has no LAME frame to tell decoders the encoder delay (1105
# samples) and the last frame's padding (< 1152), so both stay in the output.
STREAMED_MP3_EXTRA_S = (1105 + 1152) / SR
# ADTS has no place for the AAC encoder delay (1024 samples) or the last frame's
# padding (< 1024), one-shot or streamed: decoders keep both.
AAC_EXTRA_S = (1024 + 1024) / SR


def extra_s(fmt: str, live: bool) -> float:
    """How much longer than the input a decoder may return our output (see above)."""
    return AAC_EXTRA_S if fmt == "aac" else STREAMED_MP3_EXTRA_S if fmt == "mp3" and live else 0.0


def sine(seconds: float = 1.0, rate: int = SR, hz: float = TONE_HZ) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def peak_hz(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum)) * rate / len(audio)


def pcm16_to_float(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32767.0


def decoded(data: bytes, fmt: str, rate: int) -> tuple[np.ndarray, int]:
    """Decode our own output; raw pcm carries no header, so its rate is what we asked for."""
    return (pcm16_to_float(data), rate) if fmt == "pcm" else decode(data)


def streamed(fmt: str, audio: np.ndarray, rate: int = SR, out_rate: int | None = None,
             chunks: int = 10) -> tuple[StreamEncoder, list[bytes], bytes]:
    enc = StreamEncoder(fmt, rate, out_rate)
    parts = [enc.header()] + [enc.feed(c) for c in np.array_split(audio, chunks)]
    return enc, parts, enc.finish()


def opus_head_input_rate(data: bytes) -> int:
    # OpusHead: magic(8) version(1) channels(1) pre-skip(2) input rate(4, LE).
    at = data.index(b"OpusHead")
    return struct.unpack_from("<I", data, at + 12)[0]


# --- constants and rate rules -------------------------------------------------


def test_every_format_has_a_content_type_and_extension() -> None:
    assert set(CONTENT_TYPES) == set(FILE_EXTENSIONS) == set(FORMATS)
    assert CONTENT_TYPES["mp3"] == "audio/mpeg"
    assert CONTENT_TYPES["opus"].startswith("audio/ogg")


def test_check_format_lowercases() -> None:
    assert check_format("MP3") == "mp3"
    assert check_format(" Opus ") == "opus"


@pytest.mark.parametrize("bad", ["aiff", "", "wave"])
def test_unknown_format_lists_allowed(bad: str) -> None:
    with pytest.raises(UnsupportedFormat) as err:
        check_format(bad)
    assert err.value.field == "format"
    assert all(fmt in err.value.message for fmt in FORMATS)


@pytest.mark.parametrize(
    ("fmt", "source", "expected"),
    [("wav", 22050, 22050), ("flac", 22050, 22050), ("pcm", 22050, 22050), ("mp3", 22050, 22050),
     ("opus", 22050, 24000), ("opus", 16000, 16000), ("opus", 44100, 48000), ("opus", 96000, 48000)],
)
def test_default_output_rate(fmt: str, source: int, expected: int) -> None:
    assert output_sample_rate(fmt, source, None) == expected


def test_requested_rate_is_used() -> None:
    assert output_sample_rate("wav", SR, 16000) == 16000
    assert output_sample_rate("opus", SR, 48000) == 48000
    assert output_sample_rate("mp3", SR, 44100) == 44100


@pytest.mark.parametrize(
    ("fmt", "rate", "mentions"),
    [("wav", 7000, "8000 and 48000"), ("wav", 96000, "8000 and 48000"),
     ("opus", 22050, "8000, 12000, 16000, 24000, 48000"), ("mp3", 20000, "44100")],
)
def test_bad_requested_rate(fmt: str, rate: int, mentions: str) -> None:
    with pytest.raises(InvalidInput) as err:
        output_sample_rate(fmt, SR, rate)
    assert err.value.field == "sample_rate"
    assert mentions in err.value.message


def test_encode_and_stream_reject_bad_rate() -> None:
    with pytest.raises(InvalidInput):
        encode(sine(0.1), SR, "wav", 7000)
    with pytest.raises(InvalidInput):
        StreamEncoder("opus", SR, 22050)
    with pytest.raises(UnsupportedFormat):
        StreamEncoder("ogg", SR)


# --- samples ------------------------------------------------------------------


def test_to_pcm16_clips_and_is_little_endian() -> None:
    data = to_pcm16(np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0, np.nan], dtype=np.float32))
    assert list(np.frombuffer(data, dtype="<i2")) == [-32767, -32767, 0, 16384, 32767, 32767, 0]


def test_resample_identity_and_length() -> None:
    audio = sine(0.5)
    assert np.array_equal(resample(audio, SR, SR), audio)
    out = resample(audio, SR, 16000)
    assert out.dtype == np.float32 and len(out) == 8000
    assert peak_hz(out, 16000) == pytest.approx(TONE_HZ, abs=3)


# --- whole files --------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_encode_round_trip(fmt: str) -> None:
    rate = output_sample_rate(fmt, SR, None)
    audio, got_rate = decoded(encode(sine(), SR, fmt), fmt, rate)
    assert audio.dtype == np.float32
    assert 1.0 - DURATION_TOLERANCE_S <= len(audio) / got_rate <= 1.0 + DURATION_TOLERANCE_S + extra_s(fmt, False)
    assert peak_hz(audio, got_rate) == pytest.approx(TONE_HZ, abs=3)
    # Opus always decodes at 48 kHz whatever it was encoded at.
    assert got_rate == (48000 if fmt == "opus" else SR)


def test_opus_is_encoded_at_24k_by_default() -> None:
    assert opus_head_input_rate(encode(sine(0.2), SR, "opus")) == 24000
    assert opus_head_input_rate(encode(sine(0.2), SR, "opus", 16000)) == 16000


def test_wav_file_has_real_sizes_and_resamples() -> None:
    data = encode(sine(), SR, "wav", 16000)
    riff_size, rate, data_size = (struct.unpack_from("<I", data, at)[0] for at in (4, 24, 40))
    assert (riff_size, rate, data_size) == (len(data) - 8, 16000, len(data) - 44)
    audio, got_rate = decode(data)
    assert (len(audio), got_rate) == (16000, 16000)
    assert peak_hz(audio, got_rate) == pytest.approx(TONE_HZ, abs=3)


@pytest.mark.parametrize("fmt", ["mp3", "flac", "aac"])
def test_compressed_formats_resample(fmt: str) -> None:
    audio, got_rate = decode(encode(sine(), SR, fmt, 16000))
    assert got_rate == 16000
    assert 1.0 - DURATION_TOLERANCE_S <= len(audio) / got_rate <= 1.0 + DURATION_TOLERANCE_S + 2048 / 16000


def test_aac_is_adts_lc_and_decodes_from_any_frame() -> None:
    """ADTS: each frame starts with a 0xFFF syncword and names AAC-LC, mono, its rate; so a
    stream can be cut at any frame boundary and still decode (what streaming players rely on)."""
    data = encode(sine(), SR, "aac")
    frames = []
    at = 0
    while at < len(data):
        assert data[at] == 0xFF and data[at + 1] & 0xF0 == 0xF0, f"no ADTS sync at {at}"
        profile, rate_index, channels = data[at + 2] >> 6, (data[at + 2] >> 2) & 0xF, \
            ((data[at + 2] & 1) << 2) | (data[at + 3] >> 6)
        assert (profile, rate_index, channels) == (1, 7, 1)  # LC (object type 2 - 1), 22050 Hz, mono
        frames.append(at)
        at += ((data[at + 3] & 3) << 11) | (data[at + 4] << 3) | (data[at + 5] >> 5)
    assert at == len(data) and len(frames) > 20
    tail, got_rate = decode(data[frames[len(frames) // 2]:])
    assert got_rate == SR and peak_hz(tail, SR) == pytest.approx(TONE_HZ, abs=5)


@pytest.mark.parametrize(("fmt", "rate"), [("aac", 20000), ("aac", 96000)])
def test_aac_refuses_rates_adts_cannot_carry(fmt: str, rate: int) -> None:
    with pytest.raises(InvalidInput) as err:
        output_sample_rate(fmt, SR, rate)
    assert err.value.field == "sample_rate"


# --- streaming ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_round_trip(fmt: str) -> None:
    enc, parts, tail = streamed(fmt, sine())
    audio, got_rate = decoded(b"".join(parts) + tail, fmt, enc.out_rate)
    assert 1.0 - DURATION_TOLERANCE_S <= len(audio) / got_rate <= 1.0 + DURATION_TOLERANCE_S + extra_s(fmt, True)
    assert peak_hz(audio, got_rate) == pytest.approx(TONE_HZ, abs=3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_emits_bytes_before_finish(fmt: str) -> None:
    _, parts, _ = streamed(fmt, sine())
    body = parts[1:]
    assert sum(map(len, body)) > 0
    # Really incremental: the second half of the feeds produces bytes too.
    assert sum(map(len, body[5:])) > 0


def test_stream_wav_header_has_unknown_sizes() -> None:
    enc = StreamEncoder("wav", SR)
    header = enc.header()
    assert len(header) == 44 and header[:4] == b"RIFF" and header[8:16] == b"WAVEfmt "
    assert struct.unpack_from("<I", header, 4)[0] == 0xFFFFFFFF
    assert struct.unpack_from("<I", header, 40)[0] == 0xFFFFFFFF
    assert struct.unpack_from("<I", header, 24)[0] == SR
    assert enc.content_type == "audio/wav"
    assert StreamEncoder("mp3", SR).header() == b""


def test_streamed_resampling_matches_one_shot() -> None:
    audio = sine()
    enc, parts, tail = streamed("pcm", audio, out_rate=24000)
    got = pcm16_to_float(b"".join(parts) + tail)
    want = resample(audio, SR, 24000)
    assert len(got) == len(want) == 24000
    # Edges differ only by filter warm-up; chunk seams are inside the interior.
    assert np.max(np.abs(got[100:-100] - want[100:-100])) < 1e-3
    assert enc.content_type == "audio/L16; rate=24000; channels=1"


def test_stream_opus_defaults_to_24k() -> None:
    enc, parts, tail = streamed("opus", sine(0.5))
    assert enc.out_rate == 24000
    assert opus_head_input_rate(b"".join(parts) + tail) == 24000


def test_stream_cannot_be_used_after_finish() -> None:
    enc = StreamEncoder("pcm", SR)
    enc.finish()
    with pytest.raises(RuntimeError):
        enc.feed(sine(0.1))
    with pytest.raises(RuntimeError):
        enc.finish()


# --- decoding uploads ---------------------------------------------------------


@pytest.mark.parametrize("data", [b"not audio", b"", bytes(2000), b"\x89PNG\r\n\x1a\n" + bytes(64)])
def test_decode_rejects_non_audio(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType):
        decode(data)


def test_decode_downmixes_stereo_at_its_own_rate() -> None:
    left = sine(0.5, rate=44100)
    buf = io.BytesIO()
    sf.write(buf, np.stack([left, left], axis=1), 44100, format="WAV", subtype="PCM_16")
    audio, rate = decode(buf.getvalue())
    assert (audio.ndim, len(audio), rate) == (1, 22050, 44100)
    assert np.max(np.abs(audio - left)) < 1e-3


def test_decode_bounds_length() -> None:
    with pytest.raises(PayloadTooLarge):
        decode(encode(sine(), SR, "flac"), max_seconds=0.5)
    assert len(decode(encode(sine(), SR, "flac"), max_seconds=2)[0]) == SR



def _pcm_wav(channels: int, seconds: float = 0.5, rate: int = 16000) -> tuple[bytes, np.ndarray]:
    """A plain PCM WAV (no channel mask) with the same tone on every channel, and that tone."""
    tone = (0.3 * np.sin(2 * np.pi * 150 * np.arange(int(rate * seconds)) / rate)).astype(np.float32)
    data = (np.repeat(tone[:, None], channels, axis=1) * 32767).astype("<i2").tobytes()
    header = (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
              + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16)
              + b"data" + struct.pack("<I", len(data)))
    return header + data, tone


@pytest.mark.parametrize("channels", [1, 2, 6, 8, 9, 16, 64])
def test_decode_downmixes_any_channel_count(channels: int) -> None:
    """PyAV reported a wrong plane count for planar frames of 8+ channels and reading them
    crashed the process (an 8-channel WAV upload killed the ingress): decoded packed now.
    Run in a child process so a crash fails this test, not the whole session."""
    import subprocess
    import sys

    data, tone = _pcm_wav(channels)
    code = ("import sys, numpy as np; from tts_engine.audio.encoders import decode; "
            "a, r = decode(sys.stdin.buffer.read()); np.save(sys.stdout.buffer, np.append(a, r))")
    done = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()[-500:]
    out = np.load(io.BytesIO(done.stdout))
    audio, rate = out[:-1], int(out[-1])
    assert rate == 16000 and len(audio) == len(tone)
    assert np.abs(audio - tone).max() < 1e-3    # the plain mean of identical channels is the tone
