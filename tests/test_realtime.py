"""The realtime WebSocket (``/v1/tts/ws``) with a real WebSocket client over HTTP: sentences spoken
as they complete, events, stored segments, errors and close codes, a reader that does not read,
a slow one, and a client that vanishes."""

from __future__ import annotations

import json
import socket
import time

import boto3
import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


pytestmark = pytest.mark.e2e


def ws_url(service) -> str:
    return service["base"].replace("http://", "ws://") + "/v1/tts/ws"


def send(ws, **frame) -> None:
    ws.send(json.dumps(frame))


def events_until(ws, kind: str, timeout: float = 120) -> tuple[list[dict], bytes]:
    """Frames up to and including the first event of ``kind``: (events, audio bytes)."""
    events, audio = [], bytearray()
    deadline = time.monotonic() + timeout
    while True:
        frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        if isinstance(frame, bytes):
            audio += frame
            continue
        event = json.loads(frame)
        events.append(event)
        if event["type"] == "sentence_end":
            send(ws, type="ack", index=event["index"])
        if event["type"] == kind:
            return events, bytes(audio)


def close_code(ws, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=deadline - time.monotonic())
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else closed.sent.code
    raise AssertionError("the server did not close")


def test_sentences_are_spoken_as_they_complete_and_stored(service):
    with connect(ws_url(service), open_timeout=30) as ws:
        send(ws, type="config", format="pcm", timestamps=True)
        ready, _ = events_until(ws, "ready")
        for token in ["Hello", " there", ",", " listener", ".", " Audio", " flows"]:
            send(ws, type="text", text=token)
        # The first sentence is complete (" Audio" followed its full stop): its audio comes now,
        # before the second sentence is finished or a flush is sent.
        early, first_audio = events_until(ws, "sentence_end")
        assert [e["type"] for e in early][:2] == ["sentence_start", "word"] and first_audio
        assert early[0]["text"] == "Hello there, listener." and early[0]["index"] == 0
        for token in [" while", " text", " arrives", "."]:
            send(ws, type="text", text=token)
        send(ws, type="flush")
        rest, more_audio = events_until(ws, "done")
    done = rest[-1]
    words = [e for e in early + rest if e["type"] == "word"]
    assert [w["word"] for w in words] == "Hello there listener Audio flows while text arrives".split()
    starts = [w["start_s"] for w in words]
    assert starts == sorted(starts) and all(w["end_s"] > w["start_s"] for w in words)
    rate = rest[-2]["sample_rate"]
    pcm = first_audio + more_audio
    assert done["sentences"] == 2 and abs(len(pcm) / 2 / rate - done["duration_s"]) < 0.01
    stored = httpx.get(done["url"])
    assert stored.status_code == 200 and stored.content == pcm
    assert np.abs(np.frombuffer(pcm, "<i2")).max() > 1000  # speech, not silence


def test_close_flushes_then_closes_normally_and_wav_has_one_header(service):
    with connect(ws_url(service), open_timeout=30, additional_headers={"Authorization": "Bearer any"}) as ws:
        send(ws, type="config", format="wav", timestamps=False)
        send(ws, type="text", text="No full stop at the end")
        send(ws, type="close")
        events, audio = events_until(ws, "done")
        assert close_code(ws) == 1000
    assert audio[:4] == b"RIFF" and audio.count(b"RIFF") == 1
    assert not any(e["type"] == "word" for e in events)
    assert events[-1]["sentences"] == 1 and events[1]["text"] == "No full stop at the end"


def test_a_sentence_that_fails_is_reported_and_the_session_goes_on(service):
    with connect(ws_url(service), open_timeout=30) as ws:
        send(ws, type="config", voice="no-such-voice")
        send(ws, type="text", text="This voice does not exist. ")
        send(ws, type="flush")
        events, _ = events_until(ws, "done")
        error = next(e for e in events if e["type"] == "error")
        assert error["code"] == "unknown_voice" and error["index"] == 0
        assert events[-1] == {"type": "done", "url": None, "key": None, "duration_s": 0.0, "sentences": 0}


@pytest.mark.parametrize(("frames", "code", "field"), [
    ([{"type": "text", "text": "config must come first"}], 1008, "type"),
    ([{"type": "config", "speed": 9}], 1008, "speed"),
    ([{"type": "config", "format": "ogg"}], 1008, "format"),
    ([{"type": "config", "colour": "blue"}], 1008, "colour"),
    ([{"type": "config"}, {"type": "shout"}], 1008, "type"),
    ([{"type": "config"}, "not json"], 1007, "frame"),
    ([{"type": "config"}, b"\x00\x01"], 1003, "frame"),
    ([{"type": "config"}, {"type": "text", "text": "x" * 5001}], 1009, "text"),
])
def test_protocol_errors_say_why_and_close_with_a_clear_code(service, frames, code, field):
    with connect(ws_url(service), open_timeout=30) as ws:
        for frame in frames:
            ws.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))
        error = None
        try:
            while True:
                frame = ws.recv(timeout=30)
                if isinstance(frame, str) and json.loads(frame)["type"] == "error":
                    error = json.loads(frame)
        except ConnectionClosed as closed:
            assert closed.rcvd.code == code
        assert error is not None and error["field"] == field


def test_a_client_that_reads_nothing_is_bounded_then_closed(service):
    """Nothing is acknowledged: the server stops after its window of audio (4 s here) and closes
    with 1008 when no ack comes (3 s here), however much text is waiting."""
    text = " ".join(f"This is waiting sentence number {i} of a long answer." for i in range(40))
    with connect(ws_url(service), open_timeout=30, max_size=None) as ws:
        send(ws, type="config", format="pcm")
        send(ws, type="text", text=text)
        send(ws, type="flush")
        time.sleep(12)  # read nothing: a client that stalled
        audio, starts, code, reason = 0, 0, None, ""
        try:
            while True:
                frame = ws.recv(timeout=60)
                if isinstance(frame, bytes):
                    audio += len(frame)
                elif json.loads(frame)["type"] == "sentence_start":
                    starts += 1
        except ConnectionClosed as closed:
            code, reason = closed.rcvd.code, closed.rcvd.reason
    assert code == 1008 and reason.startswith("client is not reading")
    seconds = audio / 2 / 22050
    assert 4.0 <= seconds <= 4.0 + 6.0 and starts < 10  # the window and one sentence, not 40 sentences


def test_a_slow_reader_that_acks_gets_everything(service):
    text = " ".join(f"Slow reader sentence {i}." for i in range(6))
    with connect(ws_url(service), open_timeout=30) as ws:
        send(ws, type="config", format="pcm", timestamps=False)
        send(ws, type="text", text=text)
        send(ws, type="flush")
        events, audio = [], 0
        while not events or events[-1]["type"] != "done":
            frame = ws.recv(timeout=120)
            time.sleep(0.05)  # reads slowly
            if isinstance(frame, bytes):
                audio += len(frame)
                continue
            events.append(json.loads(frame))
            if events[-1]["type"] == "sentence_end":
                send(ws, type="ack", index=events[-1]["index"])
    assert events[-1]["sentences"] == 6 and abs(audio / 2 / 22050 - events[-1]["duration_s"]) < 0.01


def test_an_abrupt_disconnect_stops_synthesis_and_stores_nothing(service):
    ws = connect(ws_url(service), open_timeout=30)
    send(ws, type="config", format="mp3")
    ready, _ = events_until(ws, "ready")
    send(ws, type="text", text="A long first sentence that the client will not wait to hear the end of. "
                               "And more after it. ")
    events_until(ws, "sentence_start")
    ws.socket.shutdown(socket.SHUT_RDWR)  # gone without a close frame
    ws.socket.close()
    time.sleep(3)
    s3 = boto3.client("s3", endpoint_url=service["moto"], region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket="voxtest", Prefix=f"audio/tts/live/{ready[0]['session_id']}/")
    assert listed.get("KeyCount", 0) == 0
    uploads = s3.list_multipart_uploads(Bucket="voxtest").get("Uploads", [])
    assert not [u for u in uploads if ready[0]["session_id"] in u["Key"]]
    # The service is fine: the next session works.
    with connect(ws_url(service), open_timeout=30) as again:
        send(again, type="config")
        send(again, type="text", text="Still here.")
        send(again, type="close")
        assert events_until(again, "done")[0][-1]["sentences"] == 1


def test_protocol_is_documented_beside_the_openapi_docs(service):
    doc = httpx.get(service["base"] + "/v1/tts/ws")
    assert doc.status_code == 200 and "sentence_start" in doc.text and "1008" in doc.text
    spec = httpx.get(service["base"] + "/openapi.json").json()
    assert "sentence_start" in spec["paths"]["/v1/tts/ws"]["get"]["description"]


def test_a_session_outlives_the_proxys_request_head_deadline(service):
    """The proxy closes connections that send no request head within header_timeout_s; a WebSocket
    has sent its head (the upgrade) and must not be cut when that deadline passes."""
    import os

    with connect(ws_url(service), open_timeout=30) as ws:
        send(ws, type="config")
        events_until(ws, "ready")
        time.sleep(float(os.environ["VOXSERVE_HEADER_TIMEOUT_S"]) + 2)
        send(ws, type="text", text="Still connected after the deadline.")
        send(ws, type="close")
        assert events_until(ws, "done")[0][-1]["sentences"] == 1
