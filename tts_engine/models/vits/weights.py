"""Load a Piper voice's parameters from its ``.onnx`` file into our torch ``Vits``.

Most parameters are ONNX initializers named like our state-dict keys. The
exporter renames or constant-folds a few; those are recovered from the graph
node that consumes them (``/flow/flows.0/enc/in_layers.0/Conv`` ->
``flow.flows.0.enc.in_layers.0.weight``). Hyper-parameters are inferred from
tensor shapes and, where shapes can't tell (dilations), from node attributes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from .config import VitsConfig
from .model import Vits

_EXP_AFFINE = re.compile(r"^/dp/flows\.(\d+)/Exp_output_0$")


def load_onnx_state(path: Path) -> tuple[dict[str, np.ndarray], dict[str, dict[str, list[int]]]]:
    """(state dict keyed by Piper module paths, conv attributes keyed by module path)."""
    model = onnx.load(str(path))
    graph = model.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    conv_attrs: dict[str, dict[str, list[int]]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        if node.op_type in ("Conv", "ConvTranspose"):
            conv_attrs[_module_path(node.name)] = {a.name: list(a.ints) for a in node.attribute if a.ints}

    state: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        value = numpy_helper.to_array(init)
        key = _state_key(init.name, consumers.get(init.name, []))
        if key is None:
            continue
        if key.endswith(".logs"):
            # The exporter folded exp(-logs) of the elementwise-affine flow into a constant.
            value = -np.log(value)
        state[key] = value
    return state, conv_attrs


def _module_path(node_name: str) -> str:
    """'/flow/flows.0/enc/in_layers.0/Conv' -> 'flow.flows.0.enc.in_layers.0'."""
    return ".".join(node_name.strip("/").split("/")[:-1])


def _state_key(name: str, consumers: list[onnx.NodeProto]) -> str | None:
    if re.match(r"^(enc_p|dp|flow|dec|emb_g)\.", name):
        return name
    match = _EXP_AFFINE.match(name)
    if match:
        return f"dp.flows.{match.group(1)}.logs"
    for node in consumers:
        if node.op_type == "Gather" and node.input[0] == name:
            return _module_path(node.name) + ".weight"
        if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1 and node.input[1] == name:
            return _module_path(node.name) + ".weight"
    return None  # graph constants (shapes, scalars), not parameters


def infer_config(state: dict[str, np.ndarray], conv_attrs: dict[str, dict[str, list[int]]]) -> VitsConfig:
    """Hyper-parameters from tensor shapes (and conv dilations from the graph)."""
    n_vocab, hidden = state["enc_p.emb.weight"].shape
    n_layers = _count(state, r"enc_p\.encoder\.attn_layers\.(\d+)\.")
    rel = state["enc_p.encoder.attn_layers.0.emb_rel_k"]
    ffn = state["enc_p.encoder.ffn_layers.0.conv_1.weight"]
    dp_sep = state["dp.convs.convs_sep.0.weight"]
    flow_in = state["flow.flows.0.enc.in_layers.0.weight"]
    up_kernels = tuple(state[f"dec.ups.{i}.weight"].shape[2] for i in range(_count(state, r"dec\.ups\.(\d+)\.")))
    n_blocks = _count(state, r"dec\.resblocks\.(\d+)\.")
    per_up = n_blocks // len(up_kernels)
    resblock = "1" if "dec.resblocks.0.convs1.0.weight" in state else "2"
    conv_name = "convs1" if resblock == "1" else "convs"
    rb_kernels = tuple(state[f"dec.resblocks.{j}.{conv_name}.0.weight"].shape[2] for j in range(per_up))
    rb_dilations = tuple(
        tuple(
            conv_attrs.get(f"dec.resblocks.{j}.{conv_name}.{k}", {}).get("dilations", [1])[0]
            for k in range(_count(state, rf"dec\.resblocks\.{j}\.{conv_name}\.(\d+)\."))
        )
        for j in range(per_up)
    )
    emb_g = state.get("emb_g.weight")
    return VitsConfig(
        n_vocab=int(n_vocab),
        hidden=int(hidden),
        inter=int(state["enc_p.proj.weight"].shape[0] // 2),
        filter=int(ffn.shape[0]),
        n_heads=int(hidden // rel.shape[2]),
        n_layers=n_layers,
        kernel=int(ffn.shape[2]),
        window=int((rel.shape[1] - 1) // 2),
        dp_filter=int(dp_sep.shape[0]),
        dp_kernel=int(dp_sep.shape[2]),
        dp_flows=_count(state, r"dp\.flows\.(\d+)\.pre\.") + 1,  # + the flow dropped at export
        flow_count=_count(state, r"flow\.flows\.(\d+)\."),
        flow_kernel=int(flow_in.shape[2]),
        flow_layers=_count(state, r"flow\.flows\.0\.enc\.in_layers\.(\d+)\."),
        flow_dilation=_dilation_rate(conv_attrs),
        up_initial=int(state["dec.conv_pre.weight"].shape[0]),
        up_rates=tuple(k // 2 for k in up_kernels),
        up_kernels=up_kernels,
        resblock=resblock,
        rb_kernels=rb_kernels,
        rb_dilations=rb_dilations,
        n_speakers=1 if emb_g is None else int(emb_g.shape[0]),
        gin=0 if emb_g is None else int(emb_g.shape[1]),
    )


def _count(state: dict[str, np.ndarray], pattern: str) -> int:
    return len({m.group(1) for key in state if (m := re.match(pattern, key))})


def _dilation_rate(conv_attrs: dict[str, dict[str, list[int]]]) -> int:
    second = conv_attrs.get("flow.flows.0.enc.in_layers.1", {})
    return int(second.get("dilations", [1])[0])


def load_vits(path: Path) -> Vits:
    """A ``Vits`` with the voice's weights, in eval mode on the CPU, fp32."""
    state, attrs = load_onnx_state(Path(path))
    model = Vits(infer_config(state, attrs))
    tensors = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or missing:
        raise ValueError(f"{path.name}: weights do not fit the VITS layout "
                         f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})")
    return model.eval()
