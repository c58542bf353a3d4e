"""A VITS voice's hyper-parameters (read from its ONNX graph by ``weights.infer_config``)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class VitsConfig:
    """Hyper-parameters; ``weights.py`` infers them from a voice's tensors."""

    n_vocab: int
    hidden: int = 192
    inter: int = 192
    filter: int = 768
    n_heads: int = 2
    n_layers: int = 6
    kernel: int = 3
    window: int = 4
    dp_filter: int = 192
    dp_kernel: int = 3
    dp_flows: int = 4
    flow_count: int = 4
    flow_kernel: int = 5
    flow_layers: int = 4
    flow_dilation: int = 1
    up_initial: int = 256
    up_rates: tuple[int, ...] = (8, 8, 4)
    up_kernels: tuple[int, ...] = (16, 16, 8)
    resblock: str = "2"
    rb_kernels: tuple[int, ...] = (3, 5, 7)
    rb_dilations: tuple[tuple[int, ...], ...] = ((1, 2), (2, 6), (3, 12))
    n_speakers: int = 1
    gin: int = 0

    @property
    def hop(self) -> int:
        return math.prod(self.up_rates)
