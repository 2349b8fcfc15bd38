"""TFRecord files and ``tf.train.Example`` / ``TensorProto`` messages without TensorFlow.

The PGDL data sets are TFRecord shards whose records are serialized ``tf.train.Example``
messages with two ``bytes`` features, ``inputs`` and ``output``, each holding a tensor written
by ``tf.io.serialize_tensor`` (a serialized ``TensorProto``). This module reads (and, for tests
and conversions, writes) exactly these formats with the standard library and numpy:

* TFRecord framing: ``uint64 length | uint32 masked_crc32c(length) | data | uint32
  masked_crc32c(data)``, little endian; the checksums are CRC-32C (Castagnoli) with TFRecord's
  mask ``((c >> 15) | (c << 17)) + 0xa282ead8``. They are verified by default; for many records
  of one length the CRC runs over all records at once with numpy (one table lookup per byte
  position), so verification costs seconds, not minutes, per PGDL shard.
* Protocol buffers: varint / 64-bit / length-delimited / 32-bit wire types, enough of
  ``tf.train.Example`` (``Features.feature`` map of ``BytesList`` / ``FloatList`` /
  ``Int64List``) and of ``TensorProto`` (``dtype``, ``tensor_shape``, ``tensor_content`` and
  the typed ``*_val`` fields).

References
----------
TensorFlow ``core/example/example.proto``, ``feature.proto``, ``core/framework/tensor.proto``,
``tensor_shape.proto`` and ``core/lib/io/record_writer.cc`` (the format, not the code).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "crc32c",
    "encode_example",
    "encode_tensor",
    "masked_crc32c",
    "parse_example",
    "parse_tensor",
    "read_tfrecord",
    "write_tfrecord",
]

_POLY = 0x82F63B78  # CRC-32C (Castagnoli), reflected


def _make_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table[i] = c
    return table


_TABLE = _make_table()
_TABLE_LIST = [int(v) for v in _TABLE]
_MASK_DELTA = 0xA282EAD8


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``.

    Examples
    --------
    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    """
    c = 0xFFFFFFFF
    t = _TABLE_LIST
    for b in bytes(data):
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _crc32c_rows(buf: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """CRC-32C of ``buf[s : s + length]`` for every ``s`` in ``starts`` at once."""
    c = np.full(len(starts), 0xFFFFFFFF, dtype=np.uint32)
    for j in range(length):
        c = _TABLE[(c ^ buf[starts + j]) & 0xFF] ^ (c >> 8)
    return c ^ np.uint32(0xFFFFFFFF)


def _mask(c: Any) -> Any:
    if isinstance(c, np.ndarray):
        c = c.astype(np.uint64)
        return ((((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF).astype(np.uint32)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C that TFRecord stores after the length and after the data."""
    return int(_mask(crc32c(data)))


def read_tfrecord(path: str | Path, *, verify: bool = True) -> list[bytes]:
    """All records of a TFRecord file (uncompressed).

    Parameters
    ----------
    path : str or Path
        The file.
    verify : bool
        Check both CRC-32C checksums of every record (default).

    Returns
    -------
    list of bytes
        The records in file order.

    Raises
    ------
    ValueError
        A truncated file or a checksum that does not match (corrupted data).
    """
    raw = Path(path).read_bytes()
    n = len(raw)
    pos = 0
    heads: list[int] = []
    starts: list[int] = []
    lengths: list[int] = []
    while pos < n:
        if pos + 12 > n:
            raise ValueError(f"{path}: truncated record header at byte {pos}")
        (length,) = struct.unpack_from("<Q", raw, pos)
        end = pos + 12 + length + 4
        if end > n:
            raise ValueError(f"{path}: truncated record at byte {pos} (length {length})")
        heads.append(pos)
        starts.append(pos + 12)
        lengths.append(length)
        pos = end
    if verify and heads:
        buf = np.frombuffer(raw, dtype=np.uint8)
        h = np.asarray(heads, dtype=np.int64)
        s = np.asarray(starts, dtype=np.int64)
        ln = np.asarray(lengths, dtype=np.int64)
        stored_h = buf[h[:, None] + 8 + np.arange(4)].copy().view("<u4").ravel()
        bad = np.flatnonzero(_mask(_crc32c_rows(buf, h, 8)) != stored_h)
        if bad.size:
            raise ValueError(f"{path}: length checksum mismatch in record {int(bad[0])}")
        stored_d = buf[(s + ln)[:, None] + np.arange(4)].copy().view("<u4").ravel()
        for length in np.unique(ln):
            group = np.flatnonzero(ln == length)
            if len(group) < 16:  # few long records: the byte loop beats per-column numpy calls
                got = np.array([masked_crc32c(raw[a : a + length]) for a in s[group]])
            else:
                got = _mask(_crc32c_rows(buf, s[group], int(length)))
            bad = group[got != stored_d[group]]
            if bad.size:
                raise ValueError(f"{path}: data checksum mismatch in record {int(bad[0])}")
    return [raw[a : a + b] for a, b in zip(starts, lengths, strict=True)]


def write_tfrecord(path: str | Path, records: Iterable[bytes]) -> None:
    """Write records as an (uncompressed) TFRecord file."""
    with open(path, "wb") as f:
        for rec in records:
            rec = bytes(rec)
            head = struct.pack("<Q", len(rec))
            f.write(head + struct.pack("<I", masked_crc32c(head)))
            f.write(rec + struct.pack("<I", masked_crc32c(rec)))


# --- protocol buffers ---------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated protobuf varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("protobuf varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of every field of a message."""
    pos, n = 0, len(buf)
    val: Any
    while pos < n:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 1:
            val, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            val, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            val, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {field})")
        if pos > n:
            raise ValueError("truncated protobuf message")
        yield field, wire, val


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _packed_varints(data: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(data):
        v, pos = _varint(data, pos)
        out.append(v)
    return out


def _repeated(wire: int, val: Any, fixed: str | None) -> list[Any]:
    """Values of one occurrence of a repeated scalar field, packed or not."""
    if fixed is None:  # varint-encoded
        return [val] if wire == 0 else _packed_varints(val)
    size = struct.calcsize(fixed)
    return list(struct.unpack(f"<{len(val) // size}{fixed}", val))


def parse_example(data: bytes) -> dict[str, Any]:
    """Features of a serialized ``tf.train.Example``.

    Returns
    -------
    dict
        Feature name -> ``list[bytes]`` (``bytes_list``), ``ndarray[float32]`` (``float_list``)
        or ``ndarray[int64]`` (``int64_list``).
    """
    out: dict[str, Any] = {}
    for f, w, features in _fields(data):
        if f != 1 or w != 2:
            continue
        for f2, w2, entry in _fields(features):
            if f2 != 1 or w2 != 2:
                continue
            name, value = "", b""
            for f3, _w3, v in _fields(entry):
                if f3 == 1:
                    name = bytes(v).decode()
                elif f3 == 2:
                    value = v
            out[name] = _parse_feature(value)
    return out


def _parse_feature(data: bytes) -> Any:
    for kind, _w, lst in _fields(data):
        items = list(_fields(lst))
        if kind == 1:
            return [bytes(v) for f, _, v in items if f == 1]
        if kind == 2:
            vals = [x for f, w, v in items if f == 1 for x in _repeated(w, v, "f")]
            return np.asarray(vals, dtype=np.float32)
        if kind == 3:
            vals = [_signed64(x) for f, w, v in items if f == 1 for x in _repeated(w, v, None)]
            return np.asarray(vals, dtype=np.int64)
    return []


# TensorFlow DataType enum -> numpy dtype, and the TensorProto field of typed values
_DTYPES: dict[int, Any] = {
    1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
    9: np.int64, 10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64,
}  # fmt: skip
_VAL_FIELDS: dict[int, str | None] = {5: "f", 6: "d", 7: None, 10: None, 11: None, 13: None}


def parse_tensor(data: bytes) -> np.ndarray:
    """A tensor serialized by ``tf.io.serialize_tensor`` (a ``TensorProto``) as numpy.

    Numeric dtypes only (not strings). ``tensor_content`` (what TensorFlow writes) and the typed
    ``*_val`` fields are both read; a single typed value fills the whole shape, as in
    TensorFlow.
    """
    dtype_code, shape, content = 0, [], None
    vals: list[Any] = []
    for f, w, v in _fields(data):
        if f == 1:
            dtype_code = v
        elif f == 2:
            for f2, _w2, dim in _fields(v):
                if f2 == 2:
                    size = 0
                    for f3, _w3, s in _fields(dim):
                        if f3 == 1:
                            size = _signed64(s)
                    shape.append(size)
        elif f == 4:
            content = bytes(v)
        elif f in _VAL_FIELDS:
            vals.extend(_repeated(w, v, _VAL_FIELDS[f]))
    if dtype_code not in _DTYPES:
        raise ValueError(f"unsupported TensorProto dtype code {dtype_code}")
    dt = np.dtype(_DTYPES[dtype_code]).newbyteorder("<")
    count = int(np.prod(shape)) if shape else 1
    if content is not None:
        arr = np.frombuffer(content, dtype=dt)
    elif dtype_code == 19:  # half_val holds the float16 bit patterns as int32
        arr = np.asarray(vals, dtype=np.uint16).view(np.float16)
    else:
        arr = np.asarray([_signed64(x) if dt.kind == "i" else x for x in vals], dtype=dt)
    if arr.size == 1 and count != 1:
        arr = np.full(count, arr[0], dtype=dt)
    if arr.size != count:
        raise ValueError(f"TensorProto holds {arr.size} values for shape {shape}")
    return arr.astype(dt.newbyteorder("="), copy=False).reshape(shape)


def _key(field: int, wire: int) -> bytes:
    return _enc_varint(field << 3 | wire)


def _enc_varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _enc_varint(len(payload)) + payload


def encode_tensor(array: Any) -> bytes:
    """Serialize a numeric array as a ``TensorProto`` (like ``tf.io.serialize_tensor``)."""
    arr = np.asarray(array)
    codes = {np.dtype(v): k for k, v in _DTYPES.items()}
    if arr.dtype not in codes:
        raise TypeError(f"unsupported dtype {arr.dtype} for a TensorProto")
    shape = b"".join(_len_field(2, _key(1, 0) + _enc_varint(int(d))) for d in arr.shape)
    content = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    return (
        _key(1, 0) + _enc_varint(codes[arr.dtype]) + _len_field(2, shape) + _len_field(4, content)
    )


def encode_example(features: Mapping[str, Any]) -> bytes:
    """Serialize a ``tf.train.Example``.

    Parameters
    ----------
    features : dict
        Name -> ``bytes`` or list of bytes (``bytes_list``), float array (``float_list``) or
        int array (``int64_list``).
    """
    entries = []
    for name, value in features.items():
        if isinstance(value, bytes):
            value = [value]
        if isinstance(value, Sequence) and value and isinstance(value[0], bytes):
            lst = b"".join(_len_field(1, v) for v in value)
            feat = _len_field(1, lst)
        else:
            arr = np.asarray(value).ravel()
            if arr.dtype.kind == "f":
                feat = _len_field(2, _len_field(1, arr.astype("<f4").tobytes()))
            elif arr.dtype.kind in "iub":
                feat = _len_field(3, _len_field(1, b"".join(_enc_varint(int(x)) for x in arr)))
            else:
                raise TypeError(f"feature {name!r}: unsupported value of dtype {arr.dtype}")
        entries.append(_len_field(1, _len_field(1, name.encode()) + _len_field(2, feat)))
    return _len_field(1, b"".join(entries))
