"""The torch VITS against ONNX Runtime, and the batching / streaming contracts."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from tts_engine.engine import SynthesisOptions
from tts_engine.models.protocol import RenderItem
from tts_engine.models.vits import NoiseSpec, Vits, VitsConfig
from tts_engine.models.vits.weights import infer_config, load_onnx_state, load_vits

SENTENCES = [
    "Hello world.",
    "The quick brown fox jumps over the lazy dog.",
    "Is this the real life, or is this just fantasy?",
    "On March 5th, 2024, we shipped 1,234 units at $19.99 each.",
    "Wow!",
    "Dr. Smith lives at 221B Baker Street.",
    "Please call me at 3:30 pm tomorrow.",
    "Numbers like 3.14159 and 42 are fun.",
    "She sells sea shells by the sea shore.",
    "A.",
    "Colorless green ideas sleep furiously, said the linguist, smiling.",
    "I can't believe it's not butter!",
    "The temperature dropped to minus 5 degrees overnight.",
    "Ray Serve scales each deployment on its own.",
    "Why?",
    "Peter Piper picked a peck of pickled peppers; how many did he pick?",
    "It was the best of times, it was the worst of times, it was the age of wisdom.",
    "Ok.",
    "Synthesis at scale needs batching, streaming and caching.",
    "Goodbye, and thanks for all the fish.",
]


def ids_of(engine, text: str) -> list[int]:
    prepared = engine.prepare(text, SynthesisOptions())
    return [i for s in prepared.sentences for i in s.ids]


@pytest.fixture(scope="module")
def model(engine):
    return engine.model(engine.settings.default_voice).vits


def deterministic() -> NoiseSpec:
    return NoiseSpec(noise_scale=0.0, noise_w=0.0, length_scale=1.0)


def test_parity_with_onnx_runtime(engine, model, onnx_reference):
    worst = 0.0
    for text in SENTENCES:
        ids = ids_of(engine, text)
        ours = model.vocoder(*model.acoustic(torch.tensor([ids]), torch.tensor([len(ids)]), deterministic()))
        ours = ours[0].numpy()
        ref = onnx_reference(ids)
        assert ours.shape == ref.shape, text
        worst = max(worst, float(np.abs(ours - ref).max()))
    assert worst <= 1e-3, worst


def test_parity_with_length_scale(engine, model, onnx_reference):
    ids = ids_of(engine, "Slow it down, then speed it up.")
    for length_scale in (0.5, 1.7):
        spec = NoiseSpec(0.0, 0.0, length_scale)
        ours = model.vocoder(*model.acoustic(torch.tensor([ids]), torch.tensor([len(ids)]), spec))[0].numpy()
        ref = onnx_reference(ids, length_scale=length_scale)
        assert ours.shape == ref.shape
        assert np.abs(ours - ref).max() <= 1e-3


def test_padded_batch_matches_single_runs(engine, model):
    texts = ["Hi.", "A somewhat longer sentence to pad the others.", "Medium length here, friend."]
    seqs = [ids_of(engine, t) for t in texts]
    specs = [NoiseSpec(0.667, 0.8, 1.0, seed=i) for i in range(len(seqs))]
    voice = engine.settings.default_voice
    batched = engine.render_batch(voice, [RenderItem(voice, s, n) for s, n in zip(seqs, specs)])
    for seq, spec, got in zip(seqs, specs, batched):
        alone = engine.render_batch(voice, [RenderItem(voice, seq, spec)])[0]
        assert got.audio.shape == alone.audio.shape
        assert np.abs(got.audio - alone.audio).max() <= 1e-4
        assert got.durations == alone.durations


def test_streaming_vocoder_equals_one_shot(engine, model):
    ids = ids_of(engine, SENTENCES[16])
    z, frames = model.acoustic(torch.tensor([ids]), torch.tensor([len(ids)]), deterministic())
    whole = model.vocoder(z)[0].numpy()
    chunks = [c.numpy() for c in model.vocoder_stream(z, first_chunk=20, chunk=40, context=16)]
    assert len(chunks) > 3
    assert len(chunks[0]) / 22050 <= 0.25
    joined = np.concatenate(chunks)
    assert joined.shape == whole.shape
    assert np.abs(joined - whole).max() <= 1e-3


def test_vocoder_receptive_field_fits_stream_context(model):
    """A change at one latent frame must not reach audio further than the stream's context."""
    torch.manual_seed(0)
    z = torch.randn(1, model.cfg.inter, 80)
    base = model.vocoder(z)[0]
    bumped = z.clone()
    bumped[:, :, 40] += 1.0
    diff = (model.vocoder(bumped)[0] - base).abs() > 1e-6
    touched = torch.nonzero(diff).flatten()
    reach = max(40 * model.hop - int(touched.min()), int(touched.max()) - 41 * model.hop) / model.hop
    assert reach < 16, reach


def test_seed_reproducible_and_varies(engine):
    a = engine.synthesize("Same seed, same samples.", seed=11).audio
    b = engine.synthesize("Same seed, same samples.", seed=11).audio
    c = engine.synthesize("Same seed, same samples.", seed=12).audio
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


# ---------------------------------------------------------------------- multi-speaker layout

TINY = VitsConfig(n_vocab=40, hidden=32, inter=16, filter=64, n_heads=2, n_layers=2, window=4,
                  dp_filter=32, flow_count=2, flow_layers=2, up_initial=32, up_rates=(4, 4),
                  up_kernels=(8, 8), rb_kernels=(3, 5), rb_dilations=((1, 2), (2, 6)),
                  n_speakers=3, gin=16)


def write_piper_like_onnx(model: Vits, path) -> None:
    """An .onnx file laid out like Piper's exports: weight-normed flow convs folded into
    anonymous ``onnx::Conv_*`` tensors named only by their graph node, the elementwise
    affine's exp(-logs) folded into a constant, and the phoneme embedding renamed."""
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    inits, nodes = [], []
    for i, (key, value) in enumerate(sorted(state.items())):
        module, _, leaf = key.rpartition(".")
        node_name = "/" + module.replace(".", "/")
        if key == "enc_p.emb.weight":
            inits.append(numpy_helper.from_array(value, "sid"))
            nodes.append(helper.make_node("Gather", ["sid", "input"], ["e"], name="/enc_p/emb/Gather"))
        elif key.startswith("flow.") and ".enc." in key and leaf == "weight":
            anon = f"onnx::Conv_{9000 + i}"
            inits.append(numpy_helper.from_array(value, anon))
            nodes.append(helper.make_node("Conv", [f"x{i}", anon], [f"y{i}"], name=node_name + "/Conv",
                                          dilations=[1]))
        elif key == "dp.flows.0.logs":
            inits.append(numpy_helper.from_array(np.exp(-value), "/dp/flows.0/Exp_output_0"))
        else:
            inits.append(numpy_helper.from_array(value, key))
    for j, block in enumerate(TINY.rb_dilations):
        for k, d in enumerate(block):
            nodes.append(helper.make_node("Conv", ["a", "b"], [f"r{j}{k}"],
                                          name=f"/dec/resblocks.{j}/convs.{k}/Conv", dilations=[d]))
    graph = helper.make_graph(nodes, "tiny", [], [], initializer=inits)
    onnx.save(helper.make_model(graph), str(path))
    config = {
        "audio": {"sample_rate": 16000}, "espeak": {"voice": "en-us"},
        "language": {"code": "en_US"}, "num_speakers": 3,
        "speaker_id_map": {"ann": 0, "bob": 1, "cy": 2},
        "phoneme_id_map": {"_": [0], "^": [1], "$": [2], " ": [3], **{c: [4 + i] for i, c in enumerate("abdefhiklmnoprstuvwzæðŋɐɑɔəɛɪʊʌ.,ˈ")}},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
    }
    path.with_name(path.name + ".json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def tiny_voice(tmp_path_factory):
    torch.manual_seed(0)
    model = Vits(TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    path = tmp_path_factory.mktemp("voices") / "xx_tiny-multi.onnx"
    write_piper_like_onnx(model, path)
    return model, path


def test_multi_speaker_voice_loads_by_graph_paths(tiny_voice):
    model, path = tiny_voice
    state, attrs = load_onnx_state(path)
    assert infer_config(state, attrs) == TINY
    loaded = load_vits(path)
    for key, value in model.state_dict().items():
        assert torch.allclose(loaded.state_dict()[key], value, atol=1e-6), key


def test_multi_speaker_voice_in_catalog_and_speakers_differ(tiny_voice):
    from tts_engine.engine import TTSEngine
    from tts_engine.settings import Settings

    _, path = tiny_voice
    engine = TTSEngine(Settings(device="cpu", voices_dir=path.parent))
    voice = engine.voices.get("xx_tiny-multi")
    assert voice.describe()["speakers"] == ["ann", "bob", "cy"]
    runs = {s: engine.synthesize("hello there", voice="xx_tiny-multi", speaker=s, seed=1).audio
            for s in ("ann", "bob", 2)}
    ann, bob = runs["ann"], runs["bob"]
    assert ann.shape != bob.shape or not np.allclose(ann, bob)
    again = engine.synthesize("hello there", voice="xx_tiny-multi", speaker="ann", seed=1).audio
    assert np.array_equal(runs["ann"], again)
    from tts_engine.errors import InvalidInput

    with pytest.raises(InvalidInput) as err:
        engine.synthesize("hello", voice="xx_tiny-multi", speaker="zed")
    assert err.value.field == "speaker"
