"""Inference-only VITS (the Piper flavour) in plain torch: ``model.Vits`` over its stages
(``text_encoder``, ``duration``, ``flow``, ``generator``) and shared ``layers``; ``weights``
loads a Piper voice's ``.onnx`` initializers by name."""

from .config import VitsConfig
from .model import NoiseSpec, Vits

__all__ = ["NoiseSpec", "Vits", "VitsConfig"]
