"""cty values on the wire: the MessagePack encoding Terraform's plugin protocol uses.

Python values stand for cty values: None is null, `UNKNOWN` an unknown value, str / int / float /
bool the primitives, list a list, set or tuple, dict a map or object. Types are cty's JSON type
notation as the schemas hold them ("string", ["list", "string"], ["object", {...}], "dynamic").

Decoding is driven by the value alone, except for numbers sent as text and `dynamic` values
(a two-element array: the type as JSON, then the value). Encoding needs the type: an object
carries every attribute of its type, and a dynamic value its type. Any MessagePack extension is
an unknown value (type 0 is plain unknown; newer cores send refinements in type 12).
"""

from __future__ import annotations

import json
import struct
from typing import Any


class _Unknown:
    """The one unknown value (its refinements, if any, are not kept)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        if len(chunk) != n:
            raise ValueError("truncated MessagePack value")
        self.pos += n
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")


def _read(r: _Reader) -> Any:
    b = r.take(1)[0]
    if b <= 0x7F:
        return b
    if b >= 0xE0:
        return b - 0x100
    if 0x80 <= b <= 0x8F:
        return _read_map(r, b & 0x0F)
    if 0x90 <= b <= 0x9F:
        return [_read(r) for _ in range(b & 0x0F)]
    if 0xA0 <= b <= 0xBF:
        return r.take(b & 0x1F).decode()
    simple: dict[int, Any] = {0xC0: None, 0xC2: False, 0xC3: True}
    if b in simple:
        return simple[b]
    sizes = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
    if b in sizes:
        return r.uint(sizes[b])
    signed = {0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q", 0xCA: ">f", 0xCB: ">d"}
    if b in signed:
        fmt = signed[b]
        return struct.unpack(fmt, r.take(struct.calcsize(fmt)))[0]
    strings = {0xD9: 1, 0xDA: 2, 0xDB: 4}
    if b in strings:
        return r.take(r.uint(strings[b])).decode()
    binary = {0xC4: 1, 0xC5: 2, 0xC6: 4}
    if b in binary:
        return r.take(r.uint(binary[b]))
    if b in (0xDC, 0xDD):
        return [_read(r) for _ in range(r.uint(2 if b == 0xDC else 4))]
    if b in (0xDE, 0xDF):
        return _read_map(r, r.uint(2 if b == 0xDE else 4))
    fixext = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
    if b in fixext:
        r.take(1 + fixext[b])
        return UNKNOWN
    ext = {0xC7: 1, 0xC8: 2, 0xC9: 4}
    if b in ext:
        r.take(1 + r.uint(ext[b]))
        return UNKNOWN
    raise ValueError(f"unsupported MessagePack format byte 0x{b:02x}")


def _read_map(r: _Reader, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _ in range(n):
        key = _read(r)
        out[key] = _read(r)
    return out


def _typed(value: Any, type_: Any) -> Any:
    """Fix what the raw decoding cannot know: numbers as text, dynamic values' own types."""
    if value is None or value is UNKNOWN:
        return value
    if type_ == "dynamic":
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], bytes):
            return _typed(value[1], json.loads(value[0]))
        return value
    if type_ == "number" and isinstance(value, str):
        number = float(value)
        return int(number) if number.is_integer() else number
    if isinstance(type_, list):
        kind = type_[0]
        if kind in ("list", "set"):
            return [_typed(item, type_[1]) for item in value]
        if kind == "map":
            return {k: _typed(v, type_[1]) for k, v in value.items()}
        if kind == "object":
            return {k: _typed(v, type_[1].get(k, "dynamic")) for k, v in value.items()}
        if kind == "tuple":
            return [_typed(item, t) for item, t in zip(value, type_[1], strict=False)]
    return value


def decode(data: bytes, type_: Any) -> Any:
    """A cty value of `type_` from its MessagePack encoding."""
    if not data:
        return None
    return _typed(_read(_Reader(data)), type_)


def _len_header(n: int, fix: int, fix_max: int, wide: tuple[int, int, int]) -> bytes:
    if n <= fix_max:
        return bytes([fix | n])
    if wide[0] and n <= 0xFF:
        return bytes([wide[0], n])
    if n <= 0xFFFF:
        return bytes([wide[1]]) + n.to_bytes(2, "big")
    return bytes([wide[2]]) + n.to_bytes(4, "big")


def _write(out: bytearray, value: Any, type_: Any) -> None:
    if value is None:
        out.append(0xC0)
    elif value is UNKNOWN:
        out += b"\xd4\x00\x00"
    elif type_ == "dynamic":
        actual = type_of(value)
        out.append(0x92)
        raw = json.dumps(actual, separators=(",", ":")).encode()
        # The value's type travels first, as JSON in a MessagePack bin.
        out += _len_header(len(raw), 0, -1, (0xC4, 0xC5, 0xC6)) + raw
        _write(out, value, actual)
    elif isinstance(value, bool):
        out.append(0xC3 if value else 0xC2)
    elif isinstance(value, int):
        if 0 <= value <= 0x7F or -32 <= value < 0:
            out += struct.pack(">b", value) if value < 0 else bytes([value])
        else:
            out += b"\xd3" + struct.pack(">q", value)
    elif isinstance(value, float):
        if value.is_integer() and abs(value) < 2**63:
            _write(out, int(value), type_)
        else:
            out += b"\xcb" + struct.pack(">d", value)
    elif isinstance(value, str):
        raw = value.encode()
        out += _len_header(len(raw), 0xA0, 31, (0xD9, 0xDA, 0xDB)) + raw
    elif isinstance(value, list):
        out += _len_header(len(value), 0x90, 15, (0, 0xDC, 0xDD))
        if isinstance(type_, list) and type_[0] == "tuple":
            for item, item_type in zip(value, type_[1], strict=True):
                _write(out, item, item_type)
        else:
            element = type_[1] if isinstance(type_, list) else "dynamic"
            for item in value:
                _write(out, item, element)
    elif isinstance(value, dict):
        if isinstance(type_, list) and type_[0] == "object":
            attributes: dict[str, Any] = type_[1]
            out += _len_header(len(attributes), 0x80, 15, (0, 0xDE, 0xDF))
            for key in sorted(attributes):
                _write(out, key, "string")
                _write(out, value.get(key), attributes[key])
        else:
            element = type_[1] if isinstance(type_, list) else "dynamic"
            out += _len_header(len(value), 0x80, 15, (0, 0xDE, 0xDF))
            for key in sorted(value):
                _write(out, key, "string")
                _write(out, value[key], element)
    else:
        raise TypeError(f"no cty value for {value!r}")


def encode(value: Any, type_: Any) -> bytes:
    """The MessagePack encoding of a cty value of `type_`."""
    out = bytearray()
    _write(out, value, type_)
    return bytes(out)


def type_of(value: Any) -> Any:
    """The cty type a literal Python value stands for (for values of dynamic attributes)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return ["tuple", [type_of(item) for item in value]]
    if isinstance(value, dict):
        return ["object", {k: type_of(v) for k, v in value.items()}]
    return "dynamic"


def convert(value: Any, type_: Any) -> Any:
    """A schema default (JSON) as a value of `type_` (numbers stay numbers, strings strings)."""
    if type_ == "string" and isinstance(value, bool):
        return "true" if value else "false"
    if type_ == "string" and isinstance(value, int | float):
        return str(value)
    if type_ == "number" and isinstance(value, str):
        return float(value) if "." in value else int(value)
    return value
