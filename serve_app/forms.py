"""Strict form parsing: multipart and urlencoded bodies with UTF-8 text fields or a 4xx naming the field.

Starlette's parser decodes a field that is not valid UTF-8 as latin-1 (and the urlencoded one
replaces bad bytes), so invalid text would reach synthesis while the same bytes in JSON are a
400. Here the body (already read under its size limit) goes through python-multipart's parser
and every text field is decoded strictly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from tts_engine.errors import BadRequest, InvalidInput

MAX_PARTS = 64  # a TTS or voice form has about a dozen fields


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)
    header_name: bytes = b""
    header_value: bytes = b""


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{name}: not valid UTF-8 (byte {exc.start})", field=name) from None


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, bytes]]:
    """(text fields, file fields) of a multipart/form-data body; 400 if malformed, 422 if a text
    field is not UTF-8."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("multipart body without a boundary in its Content-Type", field="body")
    parts: list[_Part] = []

    def on_part_begin() -> None:
        if len(parts) >= MAX_PARTS:
            raise BadRequest(f"more than {MAX_PARTS} form parts", field="body")
        parts.append(_Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        parts[-1].header_name += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        parts[-1].header_value += data[start:end]

    def on_header_end() -> None:
        part = parts[-1]
        part.headers[part.header_name.strip().lower()] = part.header_value.strip()
        part.header_name = part.header_value = b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data += data[start:end]

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end, "on_part_data": on_part_data,
    })
    try:
        parser.write(body)
        parser.finalize()
    except FormParserError as exc:
        raise BadRequest(f"malformed multipart body: {exc}", field="body") from None
    if not parts:
        raise BadRequest("multipart body has no parts (check the boundary)", field="body")
    return _sorted_parts(parts)


def _sorted_parts(parts: list[_Part]) -> tuple[dict[str, str], dict[str, bytes]]:
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in parts:
        _, options = parse_options_header(part.headers.get(b"content-disposition", b""))
        if b"name" not in options:
            raise BadRequest("a multipart part has no Content-Disposition name", field="body")
        name = _text(options[b"name"], "body")
        if b"filename" in options:
            files[name] = bytes(part.data)
        else:
            fields[name] = _text(bytes(part.data), name)
    return fields, files


def parse_urlencoded(body: bytes) -> dict[str, str]:
    """Fields of an application/x-www-form-urlencoded body, strictly UTF-8 (also after %-decoding)."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest("a urlencoded body must be ASCII (percent-encode other bytes)", field="body") from None
    fields: dict[str, str] = {}
    for raw_name, raw_value in parse_qsl(text, keep_blank_values=True, encoding="latin-1"):
        name = _text(raw_name.encode("latin-1"), "body")
        fields[name] = _text(raw_value.encode("latin-1"), name)
    return fields
