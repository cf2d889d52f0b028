"""bf16 rounding and a hand-written safetensors writer/reader (numpy only).

The safetensors format: 8-byte little-endian header length N, then N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the
raw tensor bytes; offsets are relative to the end of the header. Like the Rust writer, the
header is padded with spaces to a multiple of 8 so the data starts aligned, and tensors are
laid out in the order of their (sorted) names.
"""
import json
import struct

import numpy as np


def f32_to_bf16_bits(x):
    """float32 array -> uint16 bf16 bit patterns, round-to-nearest-even (finite inputs)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_f32(b):
    """uint16 bf16 bit patterns -> float32 (exact)."""
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> uint16 array of bf16 bits (any shape). Writes one file."""
    names = sorted(tensors)
    header = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    for name in names:
        arr = tensors[name]
        if arr.dtype != np.uint16:
            raise TypeError(f"{name}: expected bf16 bits as uint16, got {arr.dtype}")
        nbytes = arr.size * 2
        header[name] = {"dtype": "BF16", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in names:
            f.write(np.ascontiguousarray(tensors[name]).astype("<u2").tobytes())
    return offset


def read_safetensors_header(path):
    """Returns (header dict without __metadata__, metadata, data start, file size).

    Raises ValueError naming the file when the header is malformed."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path}: shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", raw)
        f.seek(0, 2)
        size = f.tell()
        if n > size - 8:
            raise ValueError(f"{path}: header length {n} runs past the end of the file "
                             f"({size} bytes)")
        f.seek(8)
        header = json.loads(f.read(n).decode("utf-8"))
    meta = header.pop("__metadata__", None)
    return header, meta, 8 + n, size


def read_tensor_f32(path, entry, data_start):
    """Reads one BF16 tensor (header entry) as float32."""
    begin, end = entry["data_offsets"]
    with open(path, "rb") as f:
        f.seek(data_start + begin)
        buf = f.read(end - begin)
    bits = np.frombuffer(buf, dtype="<u2")
    return bf16_bits_to_f32(bits).reshape(entry["shape"])
