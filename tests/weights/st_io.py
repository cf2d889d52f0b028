"""Minimal safetensors reading/writing for the weights tests (no safetensors package on
Debian bookworm). Tensors are numpy arrays; bf16 is carried as uint16 bit patterns."""
import json
import struct

import numpy as np

DTYPES = {"BF16": (np.uint16, 2), "F16": (np.float16, 2), "F32": (np.float32, 4)}


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    hdr.pop("__metadata__", None)
    return hdr, 8 + n


def read_all(path):
    """{name: (dtype_str, shape, raw bytes)}"""
    hdr, base = read_header(path)
    out = {}
    with open(path, "rb") as f:
        data = f.read()
    for name, e in hdr.items():
        b, en = e["data_offsets"]
        out[name] = (e["dtype"], tuple(e["shape"]), data[base + b:base + en])
    return out


def to_bf16_bits(a):
    """float32 array -> uint16 bf16 bits, round to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def write(path, tensors, dtypes=None, header_override=None, raw_override=None):
    """tensors: {name: np.ndarray}; dtypes: {name: 'BF16'|'F16'|'F32'} (default BF16 for
    float32 arrays). header_override(hdr) may edit the header dict before it is written;
    raw_override(bytes) may edit the final file bytes."""
    dtypes = dtypes or {}
    hdr, blobs, off = {}, [], 0
    for name, a in tensors.items():
        dt = dtypes.get(name, "BF16")
        if dt == "BF16":
            raw = to_bf16_bits(a).tobytes()
        else:
            raw = np.ascontiguousarray(a, dtype=DTYPES[dt][0]).tobytes()
        hdr[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hdr["__metadata__"] = {"format": "pt"}
    if header_override:
        header_override(hdr)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    data = struct.pack("<Q", len(h)) + h + b"".join(blobs)
    if raw_override:
        data = raw_override(data)
    with open(path, "wb") as f:
        f.write(data)
