#!/usr/bin/python3
"""make_seeds.py HF_DIR H5_FILE - writes the seed corpora of tests/fuzz/corpus/<target>/.

HF_DIR: a generated test checkpoint folder (tests/gen, e.g. testdata/hf/mini2b-tiny);
H5_FILE: its converted model file. Seeds are small on purpose (libFuzzer mutates them);
run again only to refresh them, the committed corpus is what the fuzzers start from.
Needs Debian's python (numpy, h5py, PIL): /usr/bin/python3.
"""
import io
import json
import os
import struct
import sys

import h5py
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
SEP = b"\xffIVL"


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors_file(tensors, meta=None):
    hdr, blob = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    if meta:
        hdr["__metadata__"] = meta
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def seeds_safetensors():
    f32 = np.arange(6, dtype=np.float32).tobytes()
    put("fuzz_safetensors", "one_f32", safetensors_file({"a.weight": ("F32", [2, 3], f32)}))
    put("fuzz_safetensors", "mixed", safetensors_file({
        "x.bf16": ("BF16", [4], b"\x80\x3f" * 4),
        "y.f16": ("F16", [2, 2], b"\x00\x3c" * 4),
        "z.f32": ("F32", [1, 1, 2], f32[:8]),
        "empty": ("F32", [0, 4], b""),
    }, {"format": "pt"}))
    put("fuzz_safetensors", "empty_header", safetensors_file({}))
    put("fuzz_safetensors", "scalar", safetensors_file({"s": ("F32", [], f32[:4])}))


def seeds_config(hf_dir):
    cfgdir = os.path.join(HERE, "..", "weights", "configs")
    for n in sorted(os.listdir(cfgdir)):
        with open(os.path.join(cfgdir, n), "rb") as f:
            put("fuzz_config", n.replace(".json", ""), f.read())
    with open(os.path.join(hf_dir, "config.json"), "rb") as f:
        put("fuzz_config", "mini2b-tiny", f.read())


def tokenizer_blob(d):
    parts = []
    for n in ["tokenizer.model", "tokenizer_config.json", "added_tokens.json",
              "special_tokens_map.json"]:
        p = os.path.join(d, n)
        parts.append(open(p, "rb").read() if os.path.exists(p) else b"")
    return SEP.join(parts)


def seeds_tokenizer():
    for n in ["tok-internlm2", "tok-phi3"]:
        d = os.path.join(HERE, "data", n)
        put("fuzz_tokenizer", n, tokenizer_blob(d))
        model = open(os.path.join(d, "tokenizer.model"), "rb").read()
        put("fuzz_tokenizer", n + "-model-only", model)


def seeds_model_file(h5_path):
    """A model file in the converter's layout with a few small tensors (1-D contiguous, 2-D
    chunked by rows, 3-D) of the source's own HDF5 types, so mutations hit real structures."""
    out = os.path.join(CORPUS, "fuzz_model_file")
    os.makedirs(out, exist_ok=True)
    dst_path = os.path.join(out, "small.h5")
    with h5py.File(h5_path, "r") as src, h5py.File(dst_path, "w", libver=("v108", "latest")) as dst:
        for k, v in src.attrs.items():
            dst.attrs.create(k, v, dtype=src.attrs.get_id(k).get_type())
        src.copy(src["config"], dst, "config")
        g = dst.create_group("tokenizer")
        src.copy(src["tokenizer/tokenizer_config.json"], g, "tokenizer_config.json")
        t = dst.create_group("tensors")
        for name in ["llm.norm", "vision.class_embedding"]:
            src.copy(src["tensors/" + name], t, name)
        # A 2-D tensor chunked by rows, with the type of a real weight matrix.
        ref = src["tensors/llm.layers.0.q"]
        tid = ref.id.get_type()
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((2, 8))
        space = h5py.h5s.create_simple((4, 8))
        dsid = h5py.h5d.create(t.id, b"llm.layers.0.q", tid, space, dcpl=dcpl)
        raw = np.arange(32, dtype=np.uint16).view(np.uint16) if tid.get_size() == 2 else \
            np.arange(32, dtype=np.float32)
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, raw.reshape(4, 8), mtype=tid)
        for a in ref.attrs:
            t["llm.layers.0.q"].attrs[a] = ref.attrs[a]


def image_bytes(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def seeds_image():
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (13, 20, 3), dtype=np.uint8), "RGB")
    opts = bytes([5, 1 | 4, 0, 3])      # max 6 tiles, size 28, thumbnail, f32, 2^19 pixels
    put("fuzz_image", "rgb.jpg", opts + image_bytes(rgb, "JPEG", quality=80))
    put("fuzz_image", "gray.jpg", opts + image_bytes(rgb.convert("L"), "JPEG"))
    put("fuzz_image", "cmyk.jpg", opts + image_bytes(rgb.convert("CMYK"), "JPEG"))
    put("fuzz_image", "prog.jpg", bytes([11, 0, 1, 5]) + image_bytes(rgb, "JPEG", progressive=True))
    put("fuzz_image", "rgb.png", opts + image_bytes(rgb, "PNG"))
    put("fuzz_image", "rgba-interlaced.png", bytes([39, 2 | 4, 1, 7]) +
        image_bytes(rgb.convert("RGBA"), "PNG", interlace=1))
    put("fuzz_image", "palette.png", opts + image_bytes(rgb.convert("P"), "PNG"))
    g16 = Image.fromarray((rng.integers(0, 65535, (7, 9))).astype(np.uint16))
    put("fuzz_image", "gray16.png", opts + image_bytes(g16, "PNG"))
    put("fuzz_image", "wide.png", bytes([11, 3, 0, 7]) +
        image_bytes(Image.new("RGB", (300, 2), (10, 200, 30)), "PNG"))


def seeds_chat():
    def enc(flags, n_img, n_hist, batch, tiles, strings):
        b = bytes([flags, n_img, n_hist, batch])
        b += b"".join(struct.pack("<i", t) for t in tiles)
        return b + b"\0".join(s.encode() for s in strings)
    put("fuzz_chat", "one_image", enc(0, 1, 0, 0, [7], ["", "Describe the image."]))
    put("fuzz_chat", "phi3_two_images", enc(1, 2, 0, 1, [3, 13],
        ["You are a bot.", "Image-1: <image>\nImage-2: <image>\nCompare them."]))
    put("fuzz_chat", "history", enc(0, 0, 2, 2, [],
        ["", "hi", "hello!", "what?", "<|im_end|>", "And now \xe4\xbd\xa0\xe5\xa5\xbd?"]))
    put("fuzz_chat", "placeholder", enc(2 | 4, 1, 0, 0, [2], ["", "<image>\nWhat is this?"]))


def seeds_decode():
    rng = np.random.default_rng(1)
    for which in range(4):
        ids = rng.integers(0, 600, 24).astype("<u4")
        put("fuzz_decode", "ids%d" % which, bytes([which]) + ids.tobytes())
    put("fuzz_decode", "bytes", bytes([0]) + np.arange(3, 40, dtype="<u4").tobytes())


def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wt, payload):
    key = varint((num << 3) | wt)
    if wt == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload


def seeds_msg():
    # Type index byte first (fuzz_msg.c k_types): 0 BatchPlan, 1 Results, 2 Control, ...
    img = field(1, 2, b"img0") + field(2, 2, b"/data/a.jpg") + field(4, 0, 7) + \
        field(5, 0, 640) + field(6, 0, 480)
    seq = field(1, 0, 3) + field(2, 2, b"img0") + field(3, 2, varint(0)) + \
        field(4, 2, b"".join(varint(i) for i in [1, 92544, 92546, 2])) + field(5, 0, 64)
    assign = field(1, 0, 1) + field(2, 2, b"".join(varint(i) for i in range(7)))
    plan = field(1, 0, 9) + field(2, 2, img) + field(3, 0, 7) + field(4, 2, assign) + \
        field(5, 2, seq)
    put("fuzz_msg", "batch_plan", b"\x00" + plan)
    timings = field(1, 1, struct.pack("<d", 1.5)) + field(5, 0, 300)
    res = field(1, 2, b"img0") + field(2, 2, b"".join(varint(i) for i in [5, 6, 2])) + \
        field(3, 2, b"a cat") + field(4, 2, timings)
    put("fuzz_msg", "results", b"\x01" + field(1, 0, 9) + field(2, 2, res))
    put("fuzz_msg", "control", b"\x02" + field(1, 0, 3) + field(2, 0, 1) + field(3, 2, b"rank 1 failed"))


def seeds_tar():
    import tarfile
    rng = np.random.default_rng(2)
    jpg = image_bytes(Image.fromarray(rng.integers(0, 255, (6, 5, 3), dtype=np.uint8)), "JPEG")

    def tar(members, mode="w"):
        b = io.BytesIO()
        with tarfile.open(fileobj=b, mode=mode, format=tarfile.USTAR_FORMAT) as t:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 0
                t.addfile(info, io.BytesIO(data))
        return b.getvalue()
    put("fuzz_tar", "webdataset.tar", b"\0" + tar([("000001.jpg", jpg), ("000001.txt", b"a cat"),
                                                  ("000002.png", b"\x89PNG\r\n"),
                                                  ("sub/000003.jpeg", jpg)]))
    put("fuzz_tar", "escape.tar", b"\0" + tar([("../evil.jpg", jpg), ("/abs.jpg", jpg)]))
    put("fuzz_tar", "list.txt", b"\1" + b"# images\na.jpg\nkey2\ta.jpg\n\nshard{00..03}.tar\n")


def main():
    hf_dir, h5 = sys.argv[1], sys.argv[2]
    seeds_safetensors()
    seeds_config(hf_dir)
    seeds_tokenizer()
    seeds_model_file(h5)
    seeds_image()
    seeds_chat()
    seeds_decode()
    seeds_msg()
    seeds_tar()


if __name__ == "__main__":
    main()
