"""The compatibility adapters' parts that need no Ray: voice-name resolution, instruction reading,
error shapes (through a real FastAPI app), and that the adapters have no synthesis path of their own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from serve_app.adapter_errors import Problem, adapter_route
from serve_app.errors import install_error_handlers
from serve_app.routers import cosyvoice, gptsovits
from tts_engine.errors import InvalidInput, TextTooLong, UnknownVoice
from tts_engine.settings import Settings
from tts_engine.text.instructions import read_instruction
from tts_engine.voice_aliases import VoiceChoice, resolve_voice_name

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = ("gptsovits", "cosyvoice", "cloud")


# ---------------------------------------------------------------------- voice names


@pytest.mark.parametrize(("name", "choice"), [
    ("zh-CN-XiaoyanNeural", VoiceChoice(None, "zh")),
    ("en-US-JennyNeural", VoiceChoice(None, "en")),
    ("ja-JP-NanamiNeural", VoiceChoice(None, "ja")),
    ("中文女", VoiceChoice(None, "zh")),
    ("英文男", VoiceChoice(None, "en")),
    ("粤语女", VoiceChoice(None, "yue")),
    ("default", VoiceChoice(None)),
    (None, VoiceChoice(None)),
    ("en_US-joe-medium", VoiceChoice("en_US-joe-medium")),
    ("vx_0123456789abcdef", VoiceChoice("vx_0123456789abcdef")),
    ("alloy", VoiceChoice("alloy")),  # OpenAI names: the voice catalog maps those itself
])
def test_default_voice_names(name, choice):
    assert resolve_voice_name(Settings(), name) == choice


def test_configured_aliases_win_over_the_defaults():
    settings = Settings(voice_aliases={"中文女": "en_US-joe-medium", "default": "lang:en", "narrator": "lang:ja"})
    assert resolve_voice_name(settings, "中文女") == VoiceChoice("en_US-joe-medium")
    assert resolve_voice_name(settings, "default") == VoiceChoice(None, "en")
    assert resolve_voice_name(settings, "narrator") == VoiceChoice(None, "ja")
    assert resolve_voice_name(settings, "中文男") == VoiceChoice(None, "zh")


# ---------------------------------------------------------------------- CosyVoice instructions


@pytest.mark.parametrize(("text", "speed", "pitch", "volume", "ignored"), [
    ("请用尽可能快地语速说一句话<|endofprompt|>", 1.5, 0.0, 1.0, ()),
    ("Speak slowly, with a deep voice. Sound happy!", 0.8, -3.0, 1.0, ("Sound happy",)),
    ("speak very quickly and loudly", 1.5, 0.0, 1.6, ()),
    ("用低沉的声音，小声说", 1.0, -3.0, 0.6, ()),
    ("用快乐的语气说", 1.0, 0.0, 1.0, ("用快乐的语气说",)),   # 快乐 is "happy", not "fast"
    ("Not too fast please", 1.0, 0.0, 1.0, ("Not too fast please",)),  # negations are not guessed at
    ("Theo 'Crimson', is a fiery rebel leader.", 1.0, 0.0, 1.0, ("Theo 'Crimson'", "is a fiery rebel leader")),
])
def test_instructions(text, speed, pitch, volume, ignored):
    got = read_instruction(text)
    assert (got.speed, got.pitch, got.volume, got.ignored) == (speed, pitch, volume, ignored)
    assert len(got.applied) == (speed != 1.0) + (pitch != 0.0) + (volume != 1.0)


# ---------------------------------------------------------------------- error shapes over HTTP


def app_with(route_class=None) -> TestClient:
    """A FastAPI app with our global handlers and routes that fail the ways real ones do."""
    from ray.exceptions import ActorDiedError, RayTaskError

    from serve_app.middleware import RequestContext

    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContext)  # as serve_app.app: it shapes what escapes the routes
    router = APIRouter(route_class=route_class) if route_class else APIRouter()

    @router.get("/range")
    async def out_of_range():
        raise InvalidInput("speed must be between 0.5 and 2.0 (got 3.0)", field="speed")

    @router.get("/voice")
    async def unknown_voice():
        # As the TextFrontend replica's error reaches the ingress: wrapped by Ray.
        raise RayTaskError("prepare", "traceback", UnknownVoice("unknown voice 'x'", field="voice"))

    @router.get("/long")
    async def too_long():
        raise TextTooLong("text is longer than 5000 characters", field="text")

    @router.get("/died")
    async def replica_died():
        raise ActorDiedError()

    @router.get("/bug")
    async def bug():
        raise KeyError("a bug of ours")

    app.include_router(router)
    return TestClient(app, raise_server_exceptions=False)


def test_gptsovits_shape_is_upstreams():
    client = app_with(adapter_route(gptsovits.render_error))
    resp = client.get("/range")
    assert resp.status_code == 400
    assert resp.json() == {"message": "speed_factor must be between 0.5 and 2.0 (got 3.0)",
                           "Exception": "invalid_input (speed_factor)"}
    assert client.get("/voice").status_code == 400 and client.get("/voice").json()["Exception"] == \
        "unknown_voice (spk)"
    assert client.get("/long").status_code == 413 and "message" in client.get("/long").json()
    died = client.get("/died")
    assert died.status_code == 503 and set(died.json()) == {"message", "Exception"}
    bug = client.get("/bug")  # bugs are not dressed up as bad input
    assert bug.status_code == 500 and bug.json()["error"]["code"] == "internal_error"


def test_cosyvoice_shape_is_fastapis():
    client = app_with(adapter_route(cosyvoice.render_error))
    detail = client.get("/voice").json()["detail"]
    assert client.get("/voice").status_code == 404
    assert detail == [{"type": "unknown_voice", "loc": ["body", "spk_id"], "msg": "spk_id: unknown voice 'x'",
                       "input": None}]
    assert client.get("/long").json()["detail"][0]["loc"] == ["body", "tts_text"]
    assert client.get("/died").status_code == 503 and isinstance(client.get("/died").json()["detail"], str)


def test_replica_death_is_503_with_retry_after_in_our_shape_too():
    died = app_with().get("/died")
    assert died.status_code == 503 and died.headers.get("retry-after")
    assert died.json()["error"]["code"] in ("replica_unavailable", "unavailable", "service_unavailable")


def test_problem_renaming():
    problem = Problem(422, "invalid_input", "pause_s must be between 0.0 and 2.0 (got 3)", "pause_s")
    assert problem.renamed({"pause_s": "fragment_interval"}).message.startswith("fragment_interval must be")
    other = Problem(422, "x", "reference is too quiet", "reference_audio").renamed({"reference_audio": "prompt_wav"})
    assert (other.field, other.message) == ("prompt_wav", "prompt_wav: reference is too quiet")


# ---------------------------------------------------------------------- one synthesis path


@pytest.mark.parametrize("name", ADAPTERS)
def test_adapters_have_no_synthesis_path_of_their_own(name):
    """An adapter reads the wire format and calls the one SynthesisService; it never talks to
    the engine, the deployments or the encoders' synthesis side itself."""
    tree = ast.parse((ROOT / "serve_app" / "routers" / f"{name}.py").read_text())
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    forbidden = ("deployments", "tts_engine.engine", "tts_engine.models", "tts_engine.audio.assembly", "torch")
    assert not [m for m in imported if m.startswith(forbidden)], imported
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not attributes & {"remote", "render", "render_stream", "prepare", "synthesizer", "frontend"}
    source = (ROOT / "serve_app" / "routers" / f"{name}.py").read_text()
    assert "services.audio_request" in source
    assert "services.synthesis.synthesize" in source or "streaming_response(" in source


def test_rechunked_never_sends_more_than_chunk_size_and_holds_nothing_back():
    import asyncio

    from serve_app.adapter_io import rechunked

    async def body():
        for piece in (b"a" * 1300, b"", b"b" * 10, b"c" * 512):
            yield piece

    async def collect():
        return [chunk async for chunk in rechunked(body(), 512)]

    chunks = asyncio.run(collect())
    assert [len(c) for c in chunks] == [512, 512, 276, 10, 512]
    assert b"".join(chunks) == b"a" * 1300 + b"b" * 10 + b"c" * 512
