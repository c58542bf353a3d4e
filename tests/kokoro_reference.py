"""A float32 copy of Kokoro's int8 ONNX graph, run by ONNX Runtime: the parity reference.

ONNX Runtime runs ``kokoro-v1.0.int8.onnx`` with *dynamic* quantization (activations quantized
to uint8 at run time), so no float implementation can match it sample for sample. This module
rewrites the same graph into float: every quantized weight is dequantized with its own scale and
zero point, and every integer op becomes its float op, with the scale/zero-point arithmetic
around it removed:

- DynamicQuantizeLinear(x) -> MatMulInteger -> Cast -> Mul(scale)           => MatMul(x, W)
- DynamicQuantizeLinear(x) -> ConvInteger [-> Add(quantized bias)] -> Cast -> Mul(scale)
                                                                          => Conv(x, W[, b])
- DynamicQuantizeLSTM(x, Wq, Rq, ..., scales, zero points)              => LSTM(x, W, R, ...)
- Gather(int8 table) -> DequantizeLinear                                  => Gather(float table)

Everything else (the ORT-fused float ops, the harmonic source, the iSTFT) is left untouched.
It is written independently of ``tts_engine.models.kokoro.weights`` so a mistake there cannot
hide in the reference. Used by ``tests/test_kokoro_model.py`` and ``bench/kokoro.py``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

REFERENCE_FILENAME = "kokoro-v1.0.float-reference.onnx"

# Intermediate tensors of the graph, exposed as extra outputs of the reference (for the tests).
PROBES = {
    "durations": "/encoder/Cast_output_0",  # int64 [N] frames per token
    "f0": "/encoder/Squeeze_output_0",  # F0 curve, 2 values per frame
    "energy": "/encoder/Squeeze_1_output_0",  # energy (N) curve
    "asr": "/encoder/MatMul_1_output_0",  # [1, 512, F] aligned text-encoder features
    "har": "/decoder/decoder/generator/Squeeze_output_0",  # harmonic source waveform
    "source": "/decoder/decoder/generator/Concat_3_output_0",  # [1, 22, 120F + 1] its spectrum
}


def _dequant(q: np.ndarray, zero_point: np.ndarray, scale: np.ndarray, axis: int | None) -> np.ndarray:
    """(q - zero_point) * scale in float32; per-tensor, or per-channel along ``axis``."""
    zp = np.asarray(zero_point).astype(np.float32)
    sc = np.asarray(scale).astype(np.float32)
    if sc.size > 1 or zp.size > 1:
        if axis is None:
            raise ValueError("per-channel parameters need an axis")
        shape = [1] * q.ndim
        shape[axis] = -1
        zp = zp.reshape(shape) if zp.size > 1 else zp.reshape(())
        sc = sc.reshape(shape)
    return ((q.astype(np.float32) - zp) * sc).astype(np.float32)


class _Graph:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.inits = {t.name: t for t in self.graph.initializer}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in self.graph.node:
            for out in node.output:
                self.producer[out] = node
            for name in node.input:
                if name:
                    self.consumers[name].append(node)
        self.new_inits: dict[str, np.ndarray] = {}
        self.replace: dict[int, list[onnx.NodeProto]] = {}  # id(old node) -> new nodes ([] = drop)

    def array(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.inits[name])

    def only_consumer(self, name: str, op: str) -> onnx.NodeProto:
        nodes = self.consumers[name]
        if len(nodes) != 1 or nodes[0].op_type != op:
            raise ValueError(f"{name}: expected one {op} consumer, got {[n.op_type for n in nodes]}")
        return nodes[0]

    def source_of(self, quantized: str) -> str:
        dql = self.producer[quantized]
        if dql.op_type != "DynamicQuantizeLinear":
            raise ValueError(f"{quantized} is not dynamically quantized")
        return dql.input[0]

    def weight_scale(self, scales_mul_out: str, x_scale: str) -> np.ndarray:
        """The weight's scale: the initializer multiplied with the activation scale."""
        node = self.producer[scales_mul_out]
        assert node.op_type == "Mul", node.op_type
        other = [n for n in node.input if n != x_scale]
        assert len(other) == 1 and other[0] in self.inits, node.input
        return self.array(other[0])

    def add_init(self, name: str, value: np.ndarray) -> str:
        self.new_inits[name] = value
        return name

    def drop(self, *nodes: onnx.NodeProto) -> None:
        for node in nodes:
            self.replace.setdefault(id(node), [])

    def substitute(self, old: onnx.NodeProto, new: onnx.NodeProto) -> None:
        self.replace[id(old)] = [new]


def _rewrite_matmul_integer(g: _Graph, node: onnx.NodeProto) -> None:
    a_q, w_q, _a_zp, w_zp = node.input
    x = g.source_of(a_q)
    x_scale = g.producer[a_q].output[1]
    cast = g.only_consumer(node.output[0], "Cast")
    mul = g.only_consumer(cast.output[0], "Mul")
    scales = next(n for n in mul.input if n != cast.output[0])
    w = _dequant(g.array(w_q), g.array(w_zp), g.weight_scale(scales, x_scale), axis=1)
    wname = g.add_init(w_q.removesuffix("_quantized") + "_float", w)
    g.drop(node, cast)
    g.substitute(mul, helper.make_node("MatMul", [x, wname], [mul.output[0]], name=node.name + "_float"))


def _rewrite_conv_integer(g: _Graph, node: onnx.NodeProto) -> None:
    a_q, w_q, _a_zp, w_zp = node.input
    x = g.source_of(a_q)
    x_scale = g.producer[a_q].output[1]
    after = g.consumers[node.output[0]]
    assert len(after) == 1, [n.op_type for n in after]
    bias_name = None
    if after[0].op_type == "Add":  # quantized bias: Div(bias, scale) -> Floor -> Cast -> Reshape -> Add
        add = after[0]
        reshape = g.producer[next(n for n in add.input if n != node.output[0])]
        cast_i = g.producer[reshape.input[0]]
        floor = g.producer[cast_i.input[0]]
        div = g.producer[floor.input[0]]
        assert (reshape.op_type, cast_i.op_type, floor.op_type, div.op_type) == ("Reshape", "Cast", "Floor", "Div")
        bias_name = div.input[0]
        scales = div.input[1]
        cast = g.only_consumer(add.output[0], "Cast")
        g.drop(add, reshape, cast_i, floor, div)
    else:
        cast = g.only_consumer(node.output[0], "Cast")
    mul = g.only_consumer(cast.output[0], "Mul")
    if bias_name is None:
        scales = next(n for n in mul.input if n != cast.output[0])
    else:
        assert scales in mul.input
    w = _dequant(g.array(w_q), g.array(w_zp), g.weight_scale(scales, x_scale), axis=0)
    wname = g.add_init(w_q.removesuffix("_quantized") + "_float", w)
    inputs = [x, wname] + ([bias_name] if bias_name else [])
    conv = helper.make_node("Conv", inputs, [mul.output[0]], name=node.name + "_float")
    conv.attribute.extend(node.attribute)
    g.drop(node, cast)
    g.substitute(mul, conv)


def _rewrite_lstm(g: _Graph, node: onnx.NodeProto) -> None:
    # DynamicQuantizeLSTM: X, W[dir, in, 4H], R[dir, H, 4H], B, seq_lens, h0, c0, P,
    #                      W_scale, W_zero_point, R_scale, R_zero_point
    ins = list(node.input) + [""] * (12 - len(node.input))
    x, w_q, r_q, b, seq, h0, c0, p, w_s, w_z, r_s, r_z = ins

    def weight(q: str, s: str, z: str) -> np.ndarray:
        qa, sa, za = g.array(q), g.array(s), g.array(z)
        # scale/zero point per direction ([dir]) or per direction and gate column ([dir, 4H]).
        sa = sa.reshape(sa.shape[0], 1, -1)
        za = za.astype(np.float32).reshape(za.shape[0], 1, -1)
        w = (qa.astype(np.float32) - za) * sa
        return np.ascontiguousarray(w.transpose(0, 2, 1)).astype(np.float32)  # -> [dir, 4H, in]

    wname = g.add_init(w_q.removesuffix("_quantized") + "_float", weight(w_q, w_s, w_z))
    rname = g.add_init(r_q.removesuffix("_quantized") + "_float", weight(r_q, r_s, r_z))
    lstm = helper.make_node("LSTM", [x, wname, rname, b, seq, h0, c0, p], list(node.output),
                            name=node.name + "_float")
    lstm.attribute.extend(node.attribute)
    g.substitute(node, lstm)


def _rewrite_gather_dequant(g: _Graph, node: onnx.NodeProto) -> None:
    gather = g.producer[node.input[0]]
    assert gather.op_type == "Gather" and gather.input[0] in g.inits, gather.op_type
    table = _dequant(g.array(gather.input[0]), g.array(node.input[2]), g.array(node.input[1]), axis=None)
    tname = g.add_init(gather.input[0].removesuffix("_quantized") + "_float", table)
    new = helper.make_node("Gather", [tname, gather.input[1]], [node.output[0]], name=gather.name + "_float")
    new.attribute.extend(gather.attribute)
    g.drop(gather)
    g.substitute(node, new)


_REWRITES = {
    "MatMulInteger": _rewrite_matmul_integer,
    "ConvInteger": _rewrite_conv_integer,
    "DynamicQuantizeLSTM": _rewrite_lstm,
    "DequantizeLinear": _rewrite_gather_dequant,
}


def float_reference_model(int8_model: onnx.ModelProto) -> onnx.ModelProto:
    """The float32 rewrite of the int8 graph (a new ModelProto; the input is not modified)."""
    model = onnx.ModelProto()
    model.CopyFrom(int8_model)
    g = _Graph(model)
    for node in list(g.graph.node):
        rewrite = _REWRITES.get(node.op_type)
        if rewrite is not None:
            rewrite(g, node)

    nodes: list[onnx.NodeProto] = []
    for node in g.graph.node:
        nodes.extend(g.replace.get(id(node), [node]))

    # Dead-code elimination from the graph outputs (drops the now-unused quantizers).
    needed = {o.name for o in g.graph.output}
    kept: list[onnx.NodeProto] = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    kept.reverse()
    leftover = {n.op_type for n in kept} & {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
                                            "DynamicQuantizeLSTM", "DequantizeLinear"}
    if leftover:
        raise ValueError(f"integer ops left in the float graph: {sorted(leftover)}")

    inits = [t for t in g.graph.initializer if t.name in needed]
    inits += [numpy_helper.from_array(v, k) for k, v in g.new_inits.items() if k in needed]
    del g.graph.node[:]
    g.graph.node.extend(kept)
    del g.graph.initializer[:]
    g.graph.initializer.extend(inits)
    del g.graph.value_info[:]
    produced = {o for n in kept for o in n.output}
    for name in PROBES.values():
        if name in produced:
            g.graph.output.append(onnx.ValueInfoProto(name=name))
    return model


def build_float_reference(int8_path: Path, cache_dir: Path) -> Path:
    """Write (once) and return the float reference ONNX file next to the other cached files."""
    out = Path(cache_dir) / REFERENCE_FILENAME
    stamp = f"{Path(int8_path).stat().st_size}:{Path(int8_path).stat().st_mtime_ns}:probes={len(PROBES)}"
    marker = out.with_suffix(".source")
    if out.is_file() and marker.is_file() and marker.read_text() == stamp:
        return out
    model = float_reference_model(onnx.load(str(int8_path)))
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, out)
    marker.write_text(stamp)
    return out


def ort_session(path: Path, threads: int = 2):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (one inter-op thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _feed(token_ids: list[int], style: np.ndarray, speed: float) -> dict[str, np.ndarray]:
    return {
        "tokens": np.array([[0, *token_ids, 0]], dtype=np.int64),
        "style": np.asarray(style, dtype=np.float32).reshape(1, 256),
        "speed": np.array([speed], dtype=np.float32),
    }


def run_reference(session, token_ids: list[int], style: np.ndarray, speed: float = 1.0) -> np.ndarray:
    """Audio for one utterance (``token_ids`` without the 0 pads; they are added here)."""
    return session.run(["audio"], _feed(token_ids, style, speed))[0]


def run_reference_probes(session, token_ids: list[int], style: np.ndarray, speed: float = 1.0) -> dict[str, np.ndarray]:
    """Audio and the ``PROBES`` intermediates of the float reference for one utterance."""
    names = ["audio", *PROBES]
    outputs = session.run(["audio", *PROBES.values()], _feed(token_ids, style, speed))
    return dict(zip(names, outputs))
