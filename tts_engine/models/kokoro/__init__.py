"""Kokoro-82M (v1.0) in plain torch, inference only, with weights read from its int8 ONNX export.

    path = assemble_kokoro_onnx(cache_dir)
    model = KokoroModel.from_onnx(path)
    vocab, voices = load_vocab(), load_voice_packs()
    ids = tokenize(phonemes, vocab)
    tokens, lengths = pad_tokens([ids])
    feats = model.acoustic(tokens, lengths, style_for(voices["jf_alpha"], len(ids))[None], 1.0)
    audio = model.decode(feats)  # [1, samples] at 24 kHz
"""

from .assembly import ModelIntegrityError, assemble_kokoro_onnx
from .layers import NormStats
from .model import AcousticFeatures, KokoroModel
from .voices import load_vocab, load_voice_packs, pad_tokens, style_for, tokenize

__all__ = [
    "AcousticFeatures",
    "KokoroModel",
    "ModelIntegrityError",
    "NormStats",
    "assemble_kokoro_onnx",
    "load_vocab",
    "load_voice_packs",
    "pad_tokens",
    "style_for",
    "tokenize",
]
