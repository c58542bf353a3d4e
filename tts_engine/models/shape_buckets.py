"""Widths rounded up to a few sizes per octave, so that oneDNN's convolutions are built once.

oneDNN compiles a primitive for every input shape (0.3-1 ms each, ~25 per Piper sentence) and
caches a bounded number of them; each sentence has its own token and frame count, so without
rounding every render builds all of its primitives again (~15 % of a render on this CPU,
docs/BENCHMARKS.md). Rounded up to ``per_octave`` sizes per octave (at most 1/per_octave more
work; 8 per octave: 256, 288, 320, ...), widths repeat across sentences and the built primitives
are reused. The padding is masked, so the audio is that of the exact width (VITS's batching
contract: ``vits/model.py``).
"""

from __future__ import annotations


def bucketed(width: int, per_octave: int) -> int:
    """The smallest size >= ``width`` with at most ``per_octave`` sizes per octave; ``width`` itself
    when ``per_octave`` is 0."""
    if per_octave <= 0 or width <= 2 * per_octave:
        return width
    step = 2 ** (width.bit_length() - 1) // per_octave  # per_octave steps from 2**k to 2**(k+1)
    return -(-width // step) * step
