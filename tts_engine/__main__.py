"""Command line: ``python -m tts_engine "Hello world." -o hello.mp3 [--voice --speed --format]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tts_engine.audio import encoders
from tts_engine.engine import TTSEngine
from tts_engine.errors import VoxServeError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tts_engine", description="Synthesize speech to a file.")
    parser.add_argument("text", help="text to speak ('-' reads standard input)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output file")
    parser.add_argument("--voice", default=None, help="voice id (default: the settings' default voice)")
    parser.add_argument("--language", default="auto")
    parser.add_argument("--speed", type=float, default=1.0, help="0.5 to 2.0")
    parser.add_argument("--pitch", type=float, default=0.0, help="semitones, -12 to 12")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--format", default=None, help=f"one of {', '.join(encoders.FORMATS)} "
                                                      "(default: from the output file's extension)")
    parser.add_argument("--sample-rate", type=int, default=None)
    return parser


def format_for(path: Path, explicit: str | None) -> str:
    if explicit:
        return encoders.check_format(explicit)
    suffix = path.suffix.lstrip(".").lower()
    return encoders.check_format({"ogg": "opus", "raw": "pcm"}.get(suffix, suffix or "wav"))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    text = sys.stdin.read() if args.text == "-" else args.text
    try:
        fmt = format_for(args.output, args.format)
        engine = TTSEngine()
        result = engine.synthesize(text, voice=args.voice, language=args.language, speed=args.speed,
                                   pitch=args.pitch, seed=args.seed)
        data = encoders.encode(result.audio, result.sample_rate, fmt, args.sample_rate)
    except VoxServeError as exc:
        field = f" ({exc.field})" if exc.field else ""
        print(f"error{field}: {exc.message}", file=sys.stderr)
        return 2
    args.output.write_bytes(data)
    print(f"wrote {args.output} ({result.duration_s:.2f} s of audio, voice {result.voice}, {fmt})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
