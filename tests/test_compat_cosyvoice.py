"""CosyVoice runtime/python/fastapi drop-in: the requests its bundled client sends (a form body on a
GET, multipart prompt_wav), and POST forms as its server takes them; answers decoded as the client
does (headerless int16 at 22050 Hz)."""

from __future__ import annotations

import io
from urllib.parse import unquote

import httpx
import numpy as np
import pytest
import requests

from tests.audio_fixtures import SR, speaker_clip
from tts_engine.audio.encoders import encode

pytestmark = pytest.mark.e2e

TARGET_SR = 22050  # what upstream's client.py saves the samples at


@pytest.fixture(scope="module")
def base(service):
    return service["base"]


@pytest.fixture(scope="module")
def prompt_wav(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cosy") / "zero_shot_prompt.wav"
    path.write_bytes(encode(np.concatenate([speaker_clip("child", 4), speaker_clip("child", 5)]), SR, "wav"))
    return str(path)


def client_request(base: str, mode: str, tts_text: str, spk_id: str = "英文女", prompt_text: str = "",
                   prompt_wav: str = "", instruct_text: str = "") -> tuple[requests.Response, np.ndarray]:
    """What upstream's runtime/python/fastapi/client.py does for each mode: a GET carrying a form
    body (and a prompt_wav file), read with iter_content(16000), samples as int16."""
    url = f"{base}/inference_{mode}"
    if mode == "sft":
        payload = {"tts_text": tts_text, "spk_id": spk_id}
        response = requests.request("GET", url, data=payload, stream=True)
    elif mode == "zero_shot":
        payload = {"tts_text": tts_text, "prompt_text": prompt_text}
        files = [("prompt_wav", ("prompt_wav", open(prompt_wav, "rb"), "application/octet-stream"))]
        response = requests.request("GET", url, data=payload, files=files, stream=True)
    elif mode == "cross_lingual":
        payload = {"tts_text": tts_text}
        files = [("prompt_wav", ("prompt_wav", open(prompt_wav, "rb"), "application/octet-stream"))]
        response = requests.request("GET", url, data=payload, files=files, stream=True)
    else:
        payload = {"tts_text": tts_text, "spk_id": spk_id, "instruct_text": instruct_text}
        response = requests.request("GET", url, data=payload, stream=True)
    tts_audio = b""
    for r in response.iter_content(chunk_size=16000):
        tts_audio += r
    return response, np.frombuffer(tts_audio, dtype=np.int16) if response.ok else np.zeros(0, np.int16)


def assert_speech(response, samples: np.ndarray, min_s: float = 0.8) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["x-sample-rate"] == str(TARGET_SR)
    assert response.headers["x-custom-header-samplerate"] == str(TARGET_SR)
    assert response.headers["content-type"].startswith("audio/L16; rate=22050")
    assert len(samples) / TARGET_SR > min_s and np.abs(samples).max() > 1000


def test_bundled_client_sft(base):
    response, samples = client_request(base, "sft", "Hello, I am a speech synthesis model. How can I help?")
    assert_speech(response, samples, 2.0)


def test_bundled_client_zero_shot_and_cross_lingual(base, prompt_wav):
    response, samples = client_request(base, "zero_shot", "I hope you will do even better than me.",
                                       prompt_text="A prompt transcript.", prompt_wav=prompt_wav)
    assert_speech(response, samples)
    assert response.headers["x-ignored-params"] == "prompt_text"
    response, samples = client_request(base, "cross_lingual", "Cross lingual speech.", prompt_wav=prompt_wav)
    assert_speech(response, samples)


def test_bundled_client_instruct_honours_speed_and_pitch(base):
    text = "Instructions change how this sentence sounds."
    instruct = "Theo 'Crimson', is a fiery, passionate rebel leader. Speak very slowly, with a deep voice."
    response, slow = client_request(base, "instruct", text, spk_id="英文男", instruct_text=instruct)
    assert_speech(response, slow)
    assert response.headers["x-instruct-applied"] == "speed=0.65, pitch=-3"
    ignored = unquote(response.headers["x-instruct-ignored"]).split(", ")
    assert ignored == ["Theo 'Crimson'", "is a fiery", "passionate rebel leader"]
    _, plain = client_request(base, "sft", text, spk_id="英文男")
    assert len(slow) > 1.3 * len(plain)  # 1/0.65 = 1.54x, less the random duration noise


def test_instruct2_post_form_with_chinese_instruction(base, prompt_wav):
    """POST multipart, as upstream's server also takes it; a CosyVoice 2 style instruction."""
    with open(prompt_wav, "rb") as f:
        response = requests.post(f"{base}/inference_instruct2", files={"prompt_wav": ("p.wav", f)},
                                 data={"tts_text": "As fast as you can.",
                                       "instruct_text": "请用尽可能快地语速说一句话<|endofprompt|>"})
    samples = np.frombuffer(response.content, dtype=np.int16)
    assert_speech(response, samples, 0.4)
    assert response.headers["x-instruct-applied"] == "speed=1.5" and "x-instruct-ignored" not in response.headers


def test_post_urlencoded_and_get_query(base):
    posted = requests.post(f"{base}/inference_sft", data={"tts_text": "Posted as a form.", "spk_id": "英文女"})
    assert_speech(posted, np.frombuffer(posted.content, dtype=np.int16), 0.5)
    queried = httpx.get(f"{base}/inference_sft", params={"tts_text": "Sent as a query.", "spk_id": "英文男"},
                        timeout=120)
    assert queried.status_code == 200 and len(queried.content) / 2 / TARGET_SR > 0.5


def test_same_service_as_the_native_api(base):
    """No second synthesis path: the CosyVoice stream is stored under the key the native API
    computes for the same text, voice and output, so the native request is a cache hit."""
    text = "Shared cache between the adapters and the native API."
    response, samples = client_request(base, "sft", text, spk_id="英文女")
    assert response.status_code == 200
    native = httpx.post(f"{base}/v1/tts", json={"text": text, "language": "en", "format": "pcm",
                                                "sample_rate": TARGET_SR}, timeout=120).json()
    assert native.get("cached") is True and native["key"] == response.headers["x-audio-key"], native
    assert native["duration_s"] == pytest.approx(len(samples) / TARGET_SR, abs=0.001)  # headerless: by size


def test_bundled_client_defaults_in_chinese(base, prompt_wav):
    """client.py's own defaults: 中文女 and a Chinese sentence."""
    response, samples = client_request(base, "sft", "你好，我是通义千问语音合成大模型，请问有什么可以帮您的吗？",
                                       spk_id="中文女")
    assert_speech(response, samples, 2.0)
    response, samples = client_request(base, "zero_shot", "你好，我是通义千问语音合成大模型，请问有什么可以帮您的吗？",
                                       prompt_text="希望你以后能够做的比我还好呦。", prompt_wav=prompt_wav)
    assert_speech(response, samples, 2.0)


# ---------------------------------------------------------------------- errors: FastAPI's shape


def detail_of(resp, status: int, loc_field: str | None):
    assert resp.status_code == status, resp.text
    detail = resp.json()["detail"]
    if loc_field is None:
        assert isinstance(detail, str) and detail
    else:
        assert detail[0]["loc"] == ["body", loc_field] and detail[0]["msg"] and detail[0]["type"], detail
    return detail


def test_missing_fields_are_422_like_upstream(base, prompt_wav):
    assert detail_of(requests.get(f"{base}/inference_sft", data={"spk_id": "英文女"}), 422, "tts_text")[0]["type"] \
        == "missing"
    detail_of(requests.get(f"{base}/inference_sft", data={"tts_text": "hi"}), 422, "spk_id")
    detail_of(requests.post(f"{base}/inference_zero_shot", data={"tts_text": "hi", "prompt_text": "p"}), 422,
              "prompt_wav")
    with open(prompt_wav, "rb") as f:
        detail_of(requests.post(f"{base}/inference_zero_shot", data={"tts_text": "hi"}, files={"prompt_wav": f}),
                  422, "prompt_text")
    detail_of(requests.post(f"{base}/inference_instruct", data={"tts_text": "hi", "spk_id": "英文女"}), 422,
              "instruct_text")


def test_bad_values_keep_our_status_in_fastapis_shape(base):
    detail_of(requests.post(f"{base}/inference_sft", data={"tts_text": "hi", "spk_id": "nobody"}), 404, "spk_id")
    detail_of(requests.post(f"{base}/inference_sft", data={"tts_text": "x" * 5001, "spk_id": "英文女"}), 413,
              "tts_text")
    bad_clip = requests.post(f"{base}/inference_cross_lingual", data={"tts_text": "hi"},
                             files={"prompt_wav": ("p.wav", io.BytesIO(b"not audio" * 100))})
    assert bad_clip.status_code in (415, 422) and "detail" in bad_clip.json()
    short = encode(speaker_clip("child", 1)[: SR], SR, "wav")  # one second: below reference_min_s
    detail_of(requests.post(f"{base}/inference_cross_lingual", data={"tts_text": "hi"},
                            files={"prompt_wav": ("p.wav", short)}), 422, "prompt_wav")
    detail_of(requests.post(f"{base}/inference_sft", data=b"raw", headers={"content-type": "text/plain"}), 415,
              "content-type")
    just_over = b"\0" * (10 * 1024 * 1024 + 1024)  # over max_upload_bytes, inside the form's slack
    detail_of(requests.post(f"{base}/inference_cross_lingual", data={"tts_text": "hi"},
                            files={"prompt_wav": ("p.wav", just_over)}), 413, "prompt_wav")
