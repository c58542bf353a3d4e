"""GPT-SoVITS api_v2 drop-in: the requests its clients send (GET query, POST JSON, the seed article's
JSON and multipart shapes), over real HTTP against the session service, answers decoded."""

from __future__ import annotations

import json
import struct

import httpx
import numpy as np
import pytest
import requests

from tests.audio_fixtures import SR, speaker_clip
from tts_engine.audio.encoders import decode, encode

pytestmark = pytest.mark.e2e

# Upstream api_v2.py's documented POST body, every field at its documented default.
UPSTREAM_DEFAULTS = {
    "aux_ref_audio_paths": [], "prompt_text": "", "top_k": 15, "top_p": 1, "temperature": 1,
    "text_split_method": "cut5", "batch_size": 1, "batch_threshold": 0.75, "split_bucket": True,
    "speed_factor": 1.0, "fragment_interval": 0.3, "seed": -1, "parallel_infer": True,
    "repetition_penalty": 1.35, "sample_steps": 32, "super_sampling": False, "streaming_mode": False,
    "overlap_length": 2, "min_chunk_length": 16,
}


@pytest.fixture(scope="module")
def base(service):
    return service["base"]


@pytest.fixture(scope="module")
def http(base):
    with httpx.Client(base_url=base, timeout=180) as c:
        yield c


@pytest.fixture(scope="module")
def reference_wav() -> bytes:
    return encode(np.concatenate([speaker_clip("deep", 2), speaker_clip("deep", 3)]), SR, "wav")


@pytest.fixture(scope="module")
def ref_audio_path(service, reference_wav) -> str:
    """A clip in the server's reference_dir, named relative to it as GPT-SoVITS clients do."""
    (service["reference_dir"] / "speakers").mkdir(exist_ok=True)
    (service["reference_dir"] / "speakers" / "deep.wav").write_bytes(reference_wav)
    return "speakers/deep.wav"


def seconds(data: bytes) -> float:
    audio, rate = decode(data)
    return len(audio) / rate


def assert_upstream_error(resp, status: int, mentions: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"message", "Exception"} and mentions in body["message"], body
    return body


# ---------------------------------------------------------------------- upstream's shapes


def test_get_as_upstream_documents_it_streams_wav_header_then_pcm(http, ref_audio_path):
    """api_v2's documented GET example (English text): one WAV header, then raw PCM."""
    params = {"text": "The general speaks. The council listens.", "text_lang": "en",
              "ref_audio_path": ref_audio_path, "prompt_lang": "en", "prompt_text": "A reference line.",
              "text_split_method": "cut5", "batch_size": 1, "media_type": "wav", "streaming_mode": "true"}
    with http.stream("GET", "/tts", params=params) as resp:
        assert resp.status_code == 200, resp.read()
        data = b"".join(resp.iter_bytes())
    assert resp.headers["content-type"] == "audio/wav" and resp.headers["x-sample-rate"] == "22050"
    assert data[:4] == b"RIFF" and data[36:40] == b"data" and struct.unpack_from("<I", data, 24)[0] == SR
    assert data.count(b"RIFF") == 1 and (len(data) - 44) % 2 == 0  # one header, then s16 samples
    pcm = np.frombuffer(data[44:], dtype="<i2")
    assert len(pcm) / SR > 1.5 and np.abs(pcm).max() > 1000
    ignored = resp.headers["x-ignored-params"]
    assert {"prompt_lang", "prompt_text", "batch_size"} <= set(ignored.split(", "))


def test_post_json_upstream_defaults_raw(http, ref_audio_path):
    """The full documented POST body; media_type raw is headerless s16le at X-Sample-Rate."""
    body = {**UPSTREAM_DEFAULTS, "text": "Raw samples, please.", "text_lang": "en",
            "ref_audio_path": ref_audio_path, "prompt_lang": "en", "media_type": "raw"}
    resp = http.post("/tts", json=body)
    assert resp.status_code == 200, resp.text
    rate = int(resp.headers["x-sample-rate"])
    pcm = np.frombuffer(resp.content, dtype="<i2")
    assert rate == SR and len(pcm) / rate > 0.8 and np.abs(pcm).max() > 1000
    ignored = set(resp.headers["x-ignored-params"].split(", "))
    assert {"top_k", "top_p", "temperature", "repetition_penalty", "sample_steps", "aux_ref_audio_paths"} <= ignored
    assert "speed_factor" not in ignored and "text_split_method" not in ignored


@pytest.mark.parametrize("media_type,streaming_mode", [
    ("wav", False), ("ogg", False), ("aac", False), ("mp3", False),
    ("ogg", 2), ("aac", 3), ("raw", 1), ("mp3", True),
])
def test_media_types_whole_and_streamed(http, media_type, streaming_mode):
    resp = http.get("/tts", params={"text": "Format check.", "text_lang": "en", "media_type": media_type,
                                    "streaming_mode": json.dumps(streaming_mode)})
    assert resp.status_code == 200, resp.text
    if media_type == "raw":
        assert len(resp.content) / 2 / int(resp.headers["x-sample-rate"]) > 0.4
        return
    audio, rate = decode(resp.content)
    assert len(audio) / rate > 0.4 and np.abs(audio).max() > 0.05
    if media_type == "aac":
        assert resp.headers["content-type"] == "audio/aac" and resp.content[:2] == b"\xff\xf1"


def test_honoured_parameters(http):
    text = "First sentence here. Second one follows."
    common = {"text": text, "text_lang": "en", "seed": 11, "media_type": "wav"}
    normal = http.post("/tts", json=common)
    fast = http.post("/tts", json={**common, "speed_factor": 1.5})
    assert seconds(fast.content) < 0.8 * seconds(normal.content)
    # fragment_interval is the pause between pieces: two pieces under cut4, one under cut0.
    apart = http.post("/tts", json={**common, "text_split_method": "cut4", "fragment_interval": 1.0})
    together = http.post("/tts", json={**common, "text_split_method": "cut0", "fragment_interval": 1.0})
    assert seconds(apart.content) - seconds(together.content) > 0.7
    # Same request again: the phrase cache of the one synthesis service answers it.
    again = http.post("/tts", json=common)
    assert again.headers["x-cache"] == "hit" and again.content == normal.content
    other_seed = http.post("/tts", json={**common, "seed": 12})
    assert other_seed.headers["x-cache"] == "miss" and other_seed.content != normal.content


# ---------------------------------------------------------------------- the seed article's variant


# The seed article's two snippets as it prints them (host localhost:9867).
ARTICLE_JSON = '''
import requests
import json

url = "http://localhost:9867/tts"
payload = {
    "text": "欢迎使用 GPT-SoVITS 语音合成系统。",
    "lang": "zh",
    "spk": "default",
    "speed": 1.0,
    "media_type": "wav"
}
headers = {"Content-Type": "application/json"}

response = requests.post(url, data=json.dumps(payload), headers=headers)

if response.status_code == 200:
    with open("output.wav", "wb") as f:
        f.write(response.content)
    print("✅ 合成成功，音频已保存")
else:
    print(f"❌ 请求失败：{response.status_code}, {response.text}")
'''

ARTICLE_MULTIPART = '''
import requests

url = "http://localhost:9867/tts"
files = {
    "ref_audio": ("ref.wav", open("reference_voice.wav", "rb"), "audio/wav")
}
data = {
    "text": "这是用我自己的声音合成的语音。",
    "lang": "zh",
    "prompt_text": "这是一个示例语音。",
    "prompt_lang": "zh",
    "media_type": "wav"
}

response = requests.post(url, data=data, files=files)

if response.status_code == 200:
    with open("custom_output.wav", "wb") as f:
        f.write(response.content)
    print("✅ 自定义音色合成成功")
else:
    print(f"❌ 错误：{response.status_code}, {response.text}")
'''


def in_english(code: str, text: str, prompt: str = "") -> str:
    """The snippet with its Chinese text and language swapped for English (until Mandarin ships)."""
    for chinese in ("欢迎使用 GPT-SoVITS 语音合成系统。", "这是用我自己的声音合成的语音。"):
        code = code.replace(chinese, text)
    return code.replace("这是一个示例语音。", prompt).replace('"zh"', '"en"')


def run_article(code: str, base: str) -> None:
    """The snippet with its host replaced by ours; it must report success."""
    printed: list[str] = []
    namespace = {"print": lambda *a: printed.append(" ".join(map(str, a)))}
    exec(compile(code.replace("http://localhost:9867", base), "article", "exec"), namespace)  # noqa: S102
    assert len(printed) == 1 and printed[0].startswith("✅"), printed


def test_article_json_with_spk_and_lang(base, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_article(in_english(ARTICLE_JSON, "Welcome to the speech synthesis system."), base)
    assert seconds((tmp_path / "output.wav").read_bytes()) > 1.0


def test_article_multipart_ref_audio_upload(base, tmp_path, monkeypatch, reference_wav):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reference_voice.wav").write_bytes(reference_wav)
    run_article(in_english(ARTICLE_MULTIPART, "This speech uses my own voice.", "An example sentence."), base)
    assert seconds((tmp_path / "custom_output.wav").read_bytes()) > 1.0


def test_article_snippets_as_written_in_chinese(base, tmp_path, monkeypatch, reference_wav):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reference_voice.wav").write_bytes(reference_wav)
    run_article(ARTICLE_JSON, base)
    run_article(ARTICLE_MULTIPART, base)


def test_article_mp3_and_spk_names(http):
    resp = http.post("/tts", json={"text": "An mp3 answer.", "lang": "en", "spk": "en-US-GuyNeural",
                                   "media_type": "mp3"})
    assert resp.status_code == 200 and resp.headers["content-type"] == "audio/mpeg"
    assert seconds(resp.content) > 0.5


# ---------------------------------------------------------------------- errors, upstream's shape


@pytest.mark.parametrize("params,mentions", [
    ({"text_lang": "en"}, "text is required"),
    ({"text": "hi", "text_lang": "xx"}, "text_lang: xx is not supported"),
    ({"text": "hi", "media_type": "flac"}, "media_type: flac is not supported"),
    ({"text": "hi", "text_split_method": "cut9"}, "text_split_method: cut9 is not supported"),
    ({"text": "hi", "streaming_mode": "7"}, "streaming_mode must be 0, 1, 2, 3"),
    ({"text": "hi", "speed_factor": "3"}, "speed_factor must be between 0.5 and 2.0"),
    ({"text": "hi", "fragment_interval": "5"}, "fragment_interval must be between 0.0 and 2.0"),
    ({"text": "hi", "top_k": "many"}, "top_k"),
    ({"text": "hi", "ref_audio_path": "../../../../etc/passwd"}, "inside the reference directory"),
    ({"text": "hi", "ref_audio_path": "/etc/hostname"}, "inside the reference directory"),
    ({"text": "hi", "ref_audio_path": "vx_0000000000000000"}, "unknown voice"),
    ({"text": "hi", "spk": "nobody"}, "unknown voice"),
])
def test_bad_input_is_400_in_upstreams_shape(http, params, mentions):
    assert_upstream_error(http.get("/tts", params=params), 400, mentions)


def test_other_errors_keep_their_status_in_upstreams_shape(http):
    assert_upstream_error(http.post("/tts", json={"text": "x" * 5001}), 413, "5000")
    assert_upstream_error(http.post("/tts", content=b"{not json", headers={"content-type": "application/json"}),
                          400, "not valid JSON")
    assert_upstream_error(http.post("/tts", content=b"text=hi", headers={"content-type": "text/plain"}), 415,
                          "JSON or a form")
    just_over = b"\0" * (10 * 1024 * 1024 + 1024)  # over max_upload_bytes, inside the form's slack
    assert_upstream_error(http.post("/tts", data={"text": "hi"}, files={"ref_audio": ("r.wav", just_over)}), 413,
                          "ref_audio is over the limit")
    junk = http.post("/tts", data={"text": "hi"}, files={"ref_audio": ("r.wav", b"not audio" * 50)})
    assert junk.status_code in (415, 422) and set(junk.json()) == {"message", "Exception"}


@pytest.mark.parametrize("path", ["/set_refer_audio", "/set_gpt_weights", "/set_sovits_weights", "/control"])
def test_process_global_endpoints_are_refused(http, path):
    for resp in (http.get(path, params={"refer_audio_path": "a.wav", "weights_path": "x.ckpt", "command": "exit"}),
                 http.post(path, json={"command": "restart"})):
        body = assert_upstream_error(resp, 403, "process-global")
        assert "ref_audio_path" in body["message"] and "/v1/voices" in body["message"]
    assert http.get("/healthz").status_code == 200  # and nothing restarted


def test_requests_library_get_like_upstream_clients(base):
    """Upstream's own clients use requests with a params dict."""
    resp = requests.get(f"{base}/tts", params={"text": "Plain get.", "text_lang": "en"}, timeout=120)
    assert resp.status_code == 200 and seconds(resp.content) > 0.4
