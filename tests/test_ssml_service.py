"""SSML and pronunciation lexicons over real HTTP against the live service."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tts_engine.audio.encoders import decode

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def client(service):
    with httpx.Client(base_url=service["base"], timeout=180) as c:
        yield c


def error_of(resp, status):
    assert resp.status_code == status, resp.text
    return resp.json()["error"]


def test_ssml_breaks_voices_and_words(client):
    ssml = ('<speak>Hello from Joe.<break time="1s"/><voice name="kokoro/jf_alpha">'
            '<lang xml:lang="zh-CN">你好世界。</lang></voice><prosody rate="slow">Slowly now.</prosody></speak>')
    resp = client.post("/v1/tts", json={"text": ssml, "timestamps": True, "seed": 1, "response": "base64"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    audio, rate = decode(base64.b64decode(body["audio_base64"]))
    assert rate == 24000  # parts of 22.05 and 24 kHz voices joined at the higher rate
    words = body["words"]
    assert [w["word"] for w in words] == ["Hello", "from", "Joe", "你", "好", "世", "界", "Slowly", "now"]
    joe_end, kokoro_start = words[2]["end_s"], words[3]["start_s"]
    assert kokoro_start - joe_end >= 1.0  # the break (plus Kokoro's leading pad)
    assert words[-1]["end_s"] <= len(audio) / rate + 1e-3
    again = client.post("/v1/tts", json={"text": ssml, "timestamps": True, "seed": 1})
    assert again.json()["cached"] is True and again.json()["words"] == words


def test_plain_ssml_is_an_ordinary_request_with_the_same_cache(client):
    plain = client.post("/v1/tts", json={"text": "Plain and simple.", "seed": 3}).json()
    ssml = client.post("/v1/tts", json={"text": "<speak>Plain and simple.</speak>", "seed": 3}).json()
    assert ssml["key"] == plain["key"] and ssml["cached"] is True


def test_text_type_text_reads_markup_as_text(client):
    resp = client.post("/v1/tts", json={"text": "<speak>a<break time='x'/></speak>", "text_type": "text"})
    assert resp.status_code == 200, resp.text


def test_invalid_ssml_is_422_naming_the_element_and_position(client):
    err = error_of(client.post("/v1/tts", json={"text": '<speak>Hi <break time="soon"/></speak>'}), 422)
    assert err["code"] == "invalid_ssml" and err["field"] == "text"
    assert "<break> at line 1, column 11" in err["message"]
    err = error_of(client.post("/v1/tts", json={"text": "<speak>Hi", "text_type": "ssml"}), 422)
    assert "line 1, column 10" in err["message"]
    xxe = '<!DOCTYPE speak [<!ENTITY x SYSTEM "file:///etc/passwd">]><speak>&x;</speak>'
    assert "DTD" in error_of(client.post("/v1/tts", json={"text": xxe, "text_type": "ssml"}), 422)["message"]


def test_unknown_elements_warn_in_a_header(client):
    resp = client.post("/v1/tts", json={"text": "<speak>Say <emphasis>this</emphasis>.</speak>"})
    assert resp.status_code == 200
    assert "unknown element <emphasis>" in resp.headers["x-ssml-warnings"]


def test_ssml_stream_sends_parts_in_order(client):
    ssml = '<speak>First part.<break time="500ms"/>Second part.</speak>'
    with client.stream("POST", "/v1/tts/stream", json={"text": ssml, "format": "pcm", "cache": False}) as resp:
        assert resp.status_code == 200
        pcm = b"".join(resp.iter_bytes())
    rate = int(resp.headers["x-sample-rate"])
    stored = client.post("/v1/tts", json={"text": ssml, "format": "pcm"}).json()
    assert stored["cached"] is True  # the stream stored the joined file under the plan's key
    assert abs(len(pcm) / 2 / rate - stored["duration_s"]) < 0.05
    events = [json.loads(line[6:]) for line in client.post(
        "/v1/tts/stream", json={"text": ssml, "timestamps": True, "cache": False}).text.splitlines()
        if line.startswith("data: ")]
    assert [e["word"] for e in events if e["type"] == "speech.word"] == ["First", "part", "Second", "part"]


# ---------------------------------------------------------------------- lexicons


def test_lexicon_crud_and_errors(client):
    entries = [{"grapheme": "Nguyen", "phonemes": "wɪn"},
               {"grapheme": "重庆", "phonemes": "chong2 qing4", "alphabet": "pinyin"}]
    put = client.put("/v1/lexicons/names", json={"language": "en", "entries": entries})
    assert put.status_code == 200, put.text and put.json()["entries_count"] == 2
    got = client.get("/v1/lexicons/names").json()
    assert [e["grapheme"] for e in got["entries"]] == ["Nguyen", "重庆"]
    assert "names" in [lex["name"] for lex in client.get("/v1/lexicons").json()["lexicons"]]
    bad = error_of(client.put("/v1/lexicons/names", json={"entries": [{"grapheme": "x", "phonemes": "zhong",
                                                                        "alphabet": "pinyin"}]}), 422)
    assert bad["field"] == "entries[0].phonemes"
    assert error_of(client.put("/v1/lexicons/bad%20name", json={"entries": entries}), 422)["field"] == "name"
    assert error_of(client.get("/v1/lexicons/none-such"), 404)["field"] == "name"
    assert client.delete("/v1/lexicons/names").status_code == 204
    assert client.delete("/v1/lexicons/names").status_code == 404


def test_lexicon_changes_the_audio_and_the_cache_key(client):
    text = {"text": "Please call Dr. Okonkwo today.", "seed": 2, "timestamps": True}
    client.put("/v1/lexicons/people", json={"entries": [{"grapheme": "Okonkwo", "phonemes": "oʊkˈɔŋkwoʊ"}]})
    plain = client.post("/v1/tts", json=text).json()
    first = client.post("/v1/tts", json={**text, "lexicons": ["people"]}).json()
    assert first["key"] != plain["key"] and "Okonkwo" in [w["word"] for w in first["words"]]
    client.put("/v1/lexicons/people", json={"entries": [{"grapheme": "okonkwo",
                                                          "phonemes": "oʊkˈɔŋkwoʊoʊkˈɔŋkwoʊ"}]})
    changed = client.post("/v1/tts", json={**text, "lexicons": ["people"]}).json()
    assert changed["key"] != first["key"] and changed["cached"] is False
    span = lambda body: next(w["end_s"] - w["start_s"] for w in body["words"] if w["word"] == "Okonkwo")  # noqa
    assert span(changed) > 1.5 * span(first)
    err = error_of(client.post("/v1/tts", json={**text, "lexicons": ["people", "missing"]}), 404)
    assert err["field"] == "lexicons[1]"
