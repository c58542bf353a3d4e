"""GE2E speaker encoder: our own inference code for the resemblyzer weights.

The network (Wan et al. 2018, "Generalized End-to-End Loss for Speaker
Verification", as trained for resemblyzer / Real-Time-Voice-Cloning) is a
3-layer LSTM (40 -> 256 -> 256 -> 256) whose last hidden state goes through
Linear(256, 256) + ReLU and is L2-normalised.

Front end, following the hyper-parameters resemblyzer ships with
(``resemblyzer/hparams.py``) -- the code here is written from scratch:

* 16 kHz mono audio (anything else is resampled with soxr);
* volume normalised *up* to -30 dBFS (never down);
* long silences trimmed. resemblyzer uses webrtcvad (30 ms windows, moving
  average of 8, dilation of 6 windows); webrtcvad is not installed here, so
  :func:`trim_long_silences` is a simple *energy* VAD on the same 30 ms grid
  with the same smoothing and dilation. On clean speech (TTS output, studio
  references) both keep the same regions to within a window or two; on noisy
  recordings the energy VAD keeps more noise than webrtcvad would;
* a *power* mel spectrogram (not log): 25 ms Hann window = n_fft = 400
  samples, 10 ms hop = 160 samples, centred frames (reflect padding, as in the
  librosa releases the model was trained with), 40 Slaney-style mel filters
  (librosa ``filters.mel`` defaults: ``htk=False``, ``norm="slaney"``,
  fmin 0, fmax 8 kHz);
* the utterance is cut into partial utterances of 160 frames (1.6 s), at a
  rate of 1.3 partials per second (so ~50 % overlap), the last one kept when
  it is at least 75 % covered; partial embeddings are averaged and the mean is
  re-normalised.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tts_engine.errors import InvalidInput

# --- hyper-parameters (values from resemblyzer/hparams.py) ------------------------
SAMPLE_RATE = 16000
MEL_WINDOW_MS = 25
MEL_STEP_MS = 10
N_MELS = 40
N_FFT = SAMPLE_RATE * MEL_WINDOW_MS // 1000  # 400
HOP = SAMPLE_RATE * MEL_STEP_MS // 1000  # 160
PARTIAL_FRAMES = 160  # 1.6 s
PARTIAL_RATE = 1.3  # partial utterances per second
PARTIAL_MIN_COVERAGE = 0.75
VAD_WINDOW_MS = 30
VAD_AVG_WIDTH = 8
VAD_MAX_SILENCE = 6
NORM_TARGET_DBFS = -30.0
HIDDEN = 256
EMBED = 256
LAYERS = 3

_INT16_MAX = 2**15 - 1


def default_weights_path() -> Path:
    """Where the resemblyzer wheel keeps ``pretrained.pt`` (found without importing it:
    the package's own imports need librosa and webrtcvad, which are not installed)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "resemblyzer is not installed; `pip install --no-deps resemblyzer==0.1.4` "
            "or pass weights_path"
        )
    return Path(spec.origin).parent / "pretrained.pt"


# --- mel front end --------------------------------------------------------------------
def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (librosa ``htk=False``): linear to 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    lin = f / f_sp
    with np.errstate(divide="ignore"):
        log = min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep
    return np.where(f >= min_log_hz, log, lin)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(
    sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
    fmin: float = 0.0, fmax: float | None = None,
) -> np.ndarray:
    """[n_mels, 1 + n_fft // 2] triangular filters, Slaney scale and Slaney area norm
    (what ``librosa.filters.mel`` returns with its defaults)."""
    fmax = sr / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0.0, sr / 2, 1 + n_fft // 2)
    mel_pts = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_pts[2:] - mel_pts[:-2]))[:, None]  # each filter has unit area in Hz
    return weights.astype(np.float32)


_MEL_BASIS = mel_filterbank()
# periodic Hann (librosa/scipy get_window("hann", n, fftbins=True))
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float64)


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """Power mel spectrogram [n_frames, 40] of 16 kHz audio; n_frames = 1 + len // 160."""
    wav = np.asarray(wav, dtype=np.float64)
    pad = N_FFT // 2
    mode = "reflect" if len(wav) > pad else "constant"
    y = np.pad(wav, pad, mode=mode)
    n_frames = 1 + (len(y) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP][:n_frames]
    spec = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2
    return (spec @ _MEL_BASIS.T.astype(np.float64)).astype(np.float32)


# --- preprocessing -------------------------------------------------------------------------
def normalize_volume(wav: np.ndarray, target_dbfs: float = NORM_TARGET_DBFS) -> np.ndarray:
    """Raise the level to ``target_dbfs`` RMS; never lowers it (resemblyzer: increase_only)."""
    rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) if len(wav) else 0.0
    if rms <= 1e-9:
        return wav
    change_db = target_dbfs - 20 * np.log10(rms)
    if change_db <= 0:
        return wav
    return (wav * 10 ** (change_db / 20)).astype(np.float32)


def _moving_average(a: np.ndarray, width: int) -> np.ndarray:
    padded = np.concatenate((np.zeros((width - 1) // 2), a, np.zeros(width // 2)))
    c = np.cumsum(padded, dtype=np.float64)
    c[width:] = c[width:] - c[:-width]
    return c[width - 1:] / width


def speech_mask(wav: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray | None:
    """Which samples :func:`trim_long_silences` keeps (bool per sample; the tail that does
    not fill a 30 ms window is dropped), or None when it keeps the clip as it is."""
    win = VAD_WINDOW_MS * sr // 1000
    n = len(wav) - len(wav) % win
    if n < win * (VAD_AVG_WIDTH + 1):
        return None
    frames = wav[:n].reshape(-1, win).astype(np.float64)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.percentile(db, 95)
    floor = np.percentile(db, 10)
    thresh = max(loud - 40.0, floor + 12.0, -60.0)
    if floor + 12.0 > loud:  # no usable dynamic range: stationary signal / all speech
        thresh = max(loud - 40.0, -60.0)
    flags = (db > thresh).astype(np.float64)
    mask = np.round(_moving_average(flags, VAD_AVG_WIDTH)).astype(bool)
    if VAD_MAX_SILENCE > 0:
        k = np.ones(VAD_MAX_SILENCE + 1)  # dilation with a centred window, like scipy's
        mask = np.convolve(mask.astype(np.float64), k, mode="full")[
            VAD_MAX_SILENCE // 2: VAD_MAX_SILENCE // 2 + len(mask)
        ] > 0
    keep = np.zeros(len(wav), dtype=bool)
    keep[:n] = np.repeat(mask, win)
    if keep.sum() < sr // 2:
        return None
    return keep


def trim_long_silences(wav: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Energy-based stand-in for resemblyzer's webrtcvad trimming.

    A 30 ms window is "speech" when its RMS is within 40 dB of the loudest windows
    (95th percentile) and more than 12 dB above the noise floor (10th
    percentile), and above an absolute -60 dBFS. Flags are smoothed (moving
    average of 8) and dilated by 6 windows like resemblyzer, so pauses up to
    ~180 ms survive and longer silences are cut. Never returns less than 0.5 s
    of audio: if the VAD finds (almost) nothing the input is returned as is.
    """
    keep = speech_mask(wav, sr)
    return wav if keep is None else wav[keep]


def preprocess(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at 16 kHz, volume raised to -30 dBFS, long silences removed."""
    wav = np.asarray(audio, dtype=np.float32)
    if wav.ndim == 2:  # [n, channels] or [channels, n]
        wav = wav.mean(axis=1 if wav.shape[0] > wav.shape[1] else 0).astype(np.float32)
    if wav.ndim != 1:
        raise InvalidInput("audio must be a mono 1-D array", field="audio")
    if not np.all(np.isfinite(wav)):
        raise InvalidInput("audio contains NaN or Inf", field="audio")
    if sample_rate <= 0:
        raise InvalidInput("sample_rate must be positive", field="sample_rate")
    if sample_rate != SAMPLE_RATE and len(wav):
        import soxr

        wav = soxr.resample(wav, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    wav = normalize_volume(wav)
    return trim_long_silences(wav)


def partial_slices(n_samples: int, rate: float = PARTIAL_RATE,
                   min_coverage: float = PARTIAL_MIN_COVERAGE) -> list[slice]:
    """Mel-frame slices of the partial utterances (resemblyzer's scheme: 160 frames every
    round(16000 / rate / 160) frames; the last kept if >= min_coverage covered)."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(round(SAMPLE_RATE / rate / HOP))
    if not 0 < step <= PARTIAL_FRAMES:
        raise ValueError(f"partial rate {rate} out of range")
    starts = range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step)
    slices = [slice(s, s + PARTIAL_FRAMES) for s in starts]
    last = slices[-1]
    coverage = (n_samples - last.start * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < min_coverage and len(slices) > 1:
        slices.pop()
    return slices


# --- network --------------------------------------------------------------------------------
class _GE2E(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, HIDDEN, LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN, EMBED)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        e = torch.relu(self.linear(hidden[-1]))
        return e / torch.linalg.vector_norm(e, dim=1, keepdim=True).clamp_min(1e-12)


class SpeakerEncoder:
    """GE2E d-vectors (256-d, unit norm) from the resemblyzer weights. Thread-safe."""

    SAMPLE_RATE = SAMPLE_RATE
    EMBED_DIM = EMBED

    def __init__(self, weights_path: Path | None = None, device: str = "cpu") -> None:
        path = Path(weights_path) if weights_path is not None else default_weights_path()
        if not path.exists():
            raise FileNotFoundError(f"speaker encoder weights not found at {path}")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = ckpt.get("model_state", ckpt)
        state = {k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))}
        self.device = torch.device(device)
        self.model = _GE2E()
        self.model.load_state_dict(state, strict=True)
        self.model.to(self.device).eval()
        self._lock = threading.Lock()

    def embed_mels(self, mels: np.ndarray) -> np.ndarray:
        """[n_partials, 160, 40] power mels -> [n_partials, 256] unit-norm embeddings."""
        with torch.inference_mode(), self._lock:
            x = torch.from_numpy(np.ascontiguousarray(mels, dtype=np.float32)).to(self.device)
            return self.model(x).float().cpu().numpy()

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Utterance embedding: float32 [256], L2-normalised."""
        wav = preprocess(audio, sample_rate)
        if len(wav) < HOP * 10:
            raise InvalidInput("audio too short for a speaker embedding", field="audio")
        slices = partial_slices(len(wav))
        need = slices[-1].stop * HOP
        if need >= len(wav):
            wav = np.pad(wav, (0, need - len(wav)))
        mel = mel_spectrogram(wav)
        partials = self.embed_mels(np.stack([mel[s] for s in slices]))
        mean = partials.mean(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)

    def embed_many(self, clips: list[np.ndarray], sample_rate: int) -> np.ndarray:
        """Speaker embedding of several clips: mean of utterance embeddings, re-normalised."""
        embs = np.stack([self.embed(c, sample_rate) for c in clips])
        mean = embs.mean(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / den) if den > 0 else 0.0
