"""Read Kokoro's parameters out of ``kokoro-v1.0.int8.onnx``: dequantize and name them.

The file is kokoro-onnx's export of Kokoro-82M v1.0, optimized by ONNX Runtime and quantized
dynamically: 78M of its 81M weights are int8/uint8 with a scale and a zero point,

- Linear layers: ``MatMulInteger(x_q, W_q[in, out])``, W per output channel (scale/zp ``[out]``);
- Conv1d layers: ``ConvInteger(x_q, W_q[out, in, k])``, W per tensor (uint8, scalar scale/zp);
  the float bias is re-quantized inside the graph (``Div -> Floor -> Cast``) from its original;
- LSTMs: ``DynamicQuantizeLSTM(x, W_q[dir, in, 4H], R_q[dir, H, 4H], B, ...)``, per direction;
- embeddings: ``Gather(table_q) -> DequantizeLinear``.

Every weight is dequantized as ``(q - zero_point) * scale`` in float32. Weight-normed convs were
folded at export (their weight is a ``.../Mul_output_0`` tensor), ~100 tensors lost their names
(``onnx::MatMul_6547``, ``onnx::LSTM_6930``): all are named here after the graph node that
consumes them (``/encoder/text_encoder/cnn.0/cnn.0.0/Conv_quant`` -> ``text_encoder.cnn.0.0``).
State-dict keys follow the upstream module tree (``bert``, ``bert_encoder``, ``predictor``,
``text_encoder``, ``decoder``), which ``model.py`` mirrors.

Every initializer is accounted for: it becomes (part of) a state-dict entry, or it is listed in
``skipped`` with the reason (shape constants, scalars hard-coded in the torch code, ...).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

# Export wrapper prefixes -> our module tree.
_PARAM_PREFIXES = (
    ("encoder.bert_encoder.", "bert_encoder."),
    ("encoder.bert.", "bert."),
    ("encoder.predictor.", "predictor."),
    ("encoder.text_encoder.", "text_encoder."),
    ("decoder.decoder.", "decoder."),
)
_ENCODER_ROOTS = ("bert", "bert_encoder", "text_encoder", "predictor")


@dataclass
class OnnxWeights:
    """Float32 parameters keyed like our module tree, and what happened to every initializer."""

    state: dict[str, np.ndarray]
    sources: dict[str, list[str]]  # state key -> initializers it was built from
    skipped: dict[str, str]  # initializer -> why no parameter comes from it
    all_initializers: list[str] = field(default_factory=list)

    def unaccounted(self) -> list[str]:
        used = {name for names in self.sources.values() for name in names}
        return sorted(set(self.all_initializers) - used - set(self.skipped))


def param_key(name: str) -> str | None:
    """``decoder.decoder.generator.ups.0.bias`` -> ``decoder.generator.ups.0.bias`` (None if unnamed)."""
    for old, new in _PARAM_PREFIXES:
        if name.startswith(old):
            return new + name[len(old):]
    return None


def module_path(node_name: str) -> str:
    """The module a node belongs to, from its scope path.

    ``/encoder/text_encoder/cnn.0/cnn.0.0/Conv_quant`` -> ``text_encoder.cnn.0.0``;
    ``/encoder/F0.1/conv1/Conv_quant`` -> ``predictor.F0.1.conv1`` (the predictor's F0/N/shared
    scopes were exported without their parent); ``/decoder/decoder/generator/ups.0/ConvTranspose``
    -> ``decoder.generator.ups.0``.
    """
    parts = node_name.strip("/").split("/")[:-1]
    if parts[:2] == ["decoder", "decoder"]:
        parts = ["decoder"] + parts[2:]
    elif parts[:1] == ["encoder"]:
        parts = parts[1:] if parts[1] in _ENCODER_ROOTS else ["predictor"] + parts[1:]
    if parts[:1] == ["bert"]:
        # ALBERT applies its one shared layer 12 times: ".../attention_3/query_3/" -> the layer.
        parts = [re.sub(r"_\d+$", "", part) for part in parts]
    out: list[str] = []
    for part in parts:
        # nn.Sequential children are scoped with their full dotted name: "cnn.0/cnn.0.0".
        if out and part.startswith(out[-1] + "."):
            out[-1] = part
        else:
            out.append(part)
    return ".".join(out)


def _dequantize(q: np.ndarray, zero_point: np.ndarray, scale: np.ndarray, axis: int) -> np.ndarray:
    zp = np.asarray(zero_point, dtype=np.float32)
    sc = np.asarray(scale, dtype=np.float32)
    if sc.size > 1 or zp.size > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        sc = sc.reshape(shape) if sc.size > 1 else sc.reshape(())
        zp = zp.reshape(shape) if zp.size > 1 else zp.reshape(())
    return ((q.astype(np.float32) - zp) * sc).astype(np.float32)


def _lstm_gates_to_torch(w: np.ndarray) -> np.ndarray:
    """ONNX gate blocks (i, o, f, c) along axis 0 -> torch's (i, f, g=c, o)."""
    i, o, f, c = np.split(w, 4, axis=0)
    return np.ascontiguousarray(np.concatenate([i, f, c, o], axis=0))


class _Reader:
    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        self.arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.order = [t.name for t in graph.initializer]
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
        for node in graph.node:
            for out in node.output:
                self.producer[out] = node
            for k, name in enumerate(node.input):
                if name:
                    self.consumers[name].append((node, k))
        self.state: dict[str, np.ndarray] = {}
        self.sources: dict[str, list[str]] = {}
        self.skipped: dict[str, str] = {}

    def put(self, key: str, value: np.ndarray, *names: str) -> None:
        if key in self.state:
            raise ValueError(f"two initializers map to {key}: {self.sources[key]} and {names}")
        self.state[key] = np.array(value, dtype=np.float32)  # a writable copy
        self.sources[key] = [n for n in names if n]

    def activation_scale_partner(self, mul_out: str, x_scale: str) -> str:
        """The initializer multiplied with a dynamic activation scale (= the weight's scale)."""
        node = self.producer[mul_out]
        others = [n for n in node.input if n != x_scale]
        if node.op_type != "Mul" or len(others) != 1 or others[0] not in self.arrays:
            raise ValueError(f"unexpected scale arithmetic at {node.name}")
        return others[0]

    def first_consumer(self, name: str, op: str) -> tuple[onnx.NodeProto, int]:
        for node, k in self.consumers[name]:
            if node.op_type == op:
                return node, k
        raise ValueError(f"{name} has no {op} consumer")

    # -- one reader per quantized op kind ------------------------------------------------------
    def matmul_integer(self, node: onnx.NodeProto) -> None:
        a_q, w_q, _, w_zp = node.input
        x_scale = self.producer[a_q].output[1]
        cast = self.consumers[node.output[0]][0][0]
        mul = self.consumers[cast.output[0]][0][0]
        scales_out = next(n for n in mul.input if n != cast.output[0])
        w_scale = self.activation_scale_partner(scales_out, x_scale)
        key = param_key(w_q.removesuffix("_quantized"))
        if key is None:  # anonymous (onnx::MatMul_*): named after its first consumer
            key = module_path(node.name) + ".weight"
        if key in self.state and w_q in self.sources[key]:
            return  # ALBERT: the shared layer's weight, met again in a later application
        w = _dequantize(self.arrays[w_q], self.arrays[w_zp], self.arrays[w_scale], axis=1)
        self.put(key, w.T, w_q, w_zp, w_scale)  # [in, out] -> nn.Linear's [out, in]

    def conv_integer(self, node: onnx.NodeProto) -> None:
        a_q, w_q, _, w_zp = node.input
        x_scale = self.producer[a_q].output[1]
        nxt = self.consumers[node.output[0]][0][0]
        if nxt.op_type == "Add":  # bias path: Div(bias, x_scale * w_scale) -> Floor -> Cast -> Reshape
            reshape = self.producer[next(n for n in nxt.input if n != node.output[0])]
            div = self.producer[self.producer[self.producer[reshape.input[0]].input[0]].input[0]]
            bias, scales_out = div.input
            self.put(module_path(node.name) + ".bias", self.arrays[bias], bias)
        else:
            mul = self.consumers[nxt.output[0]][0][0]
            scales_out = next(n for n in mul.input if n != nxt.output[0])
        w_scale = self.activation_scale_partner(scales_out, x_scale)
        w = _dequantize(self.arrays[w_q], self.arrays[w_zp], self.arrays[w_scale], axis=0)
        self.put(module_path(node.name) + ".weight", w, w_q, w_zp, w_scale)

    def lstm(self, node: onnx.NodeProto) -> None:
        ins = list(node.input) + [""] * (12 - len(node.input))
        _, w_q, r_q, b, _, h0, c0, _, w_s, w_z, r_s, r_z = ins
        prefix = module_path(node.name)
        weights = {}
        for tag, q, s, z in (("ih", w_q, w_s, w_z), ("hh", r_q, r_s, r_z)):
            qa, sa, za = self.arrays[q], self.arrays[s], self.arrays[z]
            sa = sa.astype(np.float32).reshape(sa.shape[0], 1, -1)
            za = za.astype(np.float32).reshape(za.shape[0], 1, -1)
            weights[tag] = ((qa.astype(np.float32) - za) * sa).transpose(0, 2, 1)  # [dir, 4H, in]
        bias = self.arrays[b]  # [dir, 8H]: input bias (4H) then recurrence bias (4H)
        hidden = bias.shape[1] // 8
        for d, suffix in enumerate(("", "_reverse")):
            self.put(f"{prefix}.weight_ih_l0{suffix}", _lstm_gates_to_torch(weights["ih"][d]), w_q, w_s, w_z)
            self.put(f"{prefix}.weight_hh_l0{suffix}", _lstm_gates_to_torch(weights["hh"][d]), r_q, r_s, r_z)
            self.put(f"{prefix}.bias_ih_l0{suffix}", _lstm_gates_to_torch(bias[d, : 4 * hidden]), b)
            self.put(f"{prefix}.bias_hh_l0{suffix}", _lstm_gates_to_torch(bias[d, 4 * hidden:]), b)
        for state in (h0, c0):
            if state in self.arrays:
                self.skip(state, "LSTM initial state (zeros)", expect_zero=True)

    def gather_dequant(self, node: onnx.NodeProto) -> None:
        gather = self.producer[node.input[0]]
        table, scale, zp = gather.input[0], node.input[1], node.input[2]
        key = param_key(table.removesuffix("_quantized"))
        value = _dequantize(self.arrays[table], self.arrays[zp], self.arrays[scale], axis=0)
        self.put(key, value, table, scale, zp)

    def skip(self, name: str, reason: str, expect_zero: bool = False) -> None:
        if expect_zero and np.any(self.arrays[name]):
            raise ValueError(f"{name}: expected zeros ({reason})")
        self.skipped.setdefault(name, reason)


_SNAKE_RECIPROCAL = re.compile(r"/Reciprocal(_\d+)?_output_0$")


def read_onnx_weights(path: Path) -> OnnxWeights:
    """All of Kokoro's parameters from the int8 ONNX file, dequantized to float32."""
    model = onnx.load(str(path))
    r = _Reader(model)
    for node in model.graph.node:
        op = node.op_type
        if op == "MatMulInteger":
            r.matmul_integer(node)
        elif op == "ConvInteger":
            r.conv_integer(node)
        elif op == "DynamicQuantizeLSTM":
            r.lstm(node)
        elif op == "DequantizeLinear":
            r.gather_dequant(node)

    _float_initializers(r)
    weights = OnnxWeights(r.state, r.sources, r.skipped, list(r.order))
    missing = weights.unaccounted()
    if missing:
        raise ValueError(f"initializers neither loaded nor skipped: {missing[:10]}")
    return weights


def _float_initializers(r: _Reader) -> None:
    """Parameters the quantizer left in float, and the graph's constants."""
    used = {name for names in r.sources.values() for name in names}
    for name in r.order:
        if name in used or name in r.skipped:
            continue
        value = r.arrays[name]
        consumers = r.consumers[name]
        key = param_key(name)
        if key is not None and value.dtype == np.float32 and not key.endswith(("_scale", "_zero_point")):
            r.put(key, value, name)  # named float parameters: biases, LayerNorm, alpha, ...
        elif value.shape == (1, 512) and value.dtype == np.int64:
            what = "position ids (arange)" if value.any() else "token type ids (zeros)"
            if value.any() and not np.array_equal(value[0], np.arange(512)):
                raise ValueError(f"{name}: unexpected ALBERT id buffer")
            r.skip(name, f"ALBERT {what} buffer, recomputed")
        elif value.dtype.kind in "iu" and not name.endswith(("_quantized", "_scale", "_zero_point")):
            r.skip(name, "integer shape/index/axis constant of the graph")
        elif _SNAKE_RECIPROCAL.search(name):
            # Snake's 1/alpha, constant-folded: Mul(recip, Pow(Sin(Mul(alpha, x)), 2)).
            node, _ = consumers[0]
            pow_node = r.producer[next(n for n in node.input if n != name)]
            sin_node = r.producer[pow_node.input[0]]
            alpha_mul = r.producer[sin_node.input[0]]
            alpha = next(n for n in alpha_mul.input if n in r.arrays)
            key = param_key(alpha)
            r.put(key.replace(".alpha", ".inv_alpha"), value, name)
        elif any(node.op_type in ("Conv", "ConvTranspose") and k == 1 for node, k in consumers):
            node, _ = next((n, k) for n, k in consumers if n.op_type in ("Conv", "ConvTranspose"))
            r.put(module_path(node.name) + ".weight", value, name)  # float conv (weight-norm folded)
        elif name.startswith("onnx::MatMul_"):
            node, _ = r.first_consumer(name, "MatMul")
            r.put(module_path(node.name) + ".weight", value.T, name)  # float Linear
        elif name.endswith("generator/Constant_17_output_0"):
            r.put("decoder.generator.stft_window", value, name)  # the STFT's periodic Hann window
        elif consumers and consumers[0][0].op_type == "LayerNormalization":
            ones = consumers[0][1] == 1
            ok = np.all(value == (1.0 if ones else 0.0))
            if not ok:
                raise ValueError(f"{name}: unexpected non-affine LayerNorm constant")
            r.skip(name, "weight/bias (ones/zeros) of AdaLayerNorm's non-affine LayerNorm")
        elif "ConstantOfShape" in name and not np.any(value):
            r.skip(name, "LSTM initial state (zeros)")
        elif value.size <= 9:
            r.skip(name, f"scalar constant {value.ravel().tolist()} (hard-coded in the torch code)")
