"""Test inputs for `internvl caption`: a folder, a list file and WebDataset tar shards, with
good images (JPEG and PNG of several sizes, so the tile counts differ) and bad ones (corrupt,
truncated, not an image, a missing file, tar members whose names escape with ../ or are
absolute). Writes expected.json: every key that must appear exactly once and whether it is a
caption ("ok") or an error line ("error"). Keys are unique across all inputs.

usage: /usr/bin/python3 make_data.py OUT [--shards N] [--per-shard K] [--dir-images D]
"""
import argparse
import io
import json
import os
import random
import tarfile

from PIL import Image


def image_bytes(rng, fmt):
    w, h = rng.choice([(448, 448), (640, 480), (300, 700), (900, 300), (200, 150)])
    im = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    px = im.load()
    for _ in range(300):
        px[rng.randrange(w), rng.randrange(h)] = tuple(rng.randrange(256) for _ in range(3))
    b = io.BytesIO()
    im.save(b, format=fmt)
    return b.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shards", type=int, default=3)
    ap.add_argument("--per-shard", type=int, default=4)
    ap.add_argument("--dir-images", type=int, default=5)
    a = ap.parse_args()
    rng = random.Random(7)
    exp = {}
    os.makedirs(a.out, exist_ok=True)

    # A folder, nested, with bad files and a file that is not an image by extension.
    d = os.path.join(a.out, "dir")
    for i in range(a.dir_images):
        sub = ["", "sub", os.path.join("sub", "deep")][i % 3]
        os.makedirs(os.path.join(d, sub), exist_ok=True)
        ext = "png" if i % 2 else "jpg"
        name = os.path.join(sub, "d%02d" % i)
        with open(os.path.join(d, name + "." + ext), "wb") as f:
            f.write(image_bytes(rng, "PNG" if ext == "png" else "JPEG"))
        exp[name] = "ok"
    good = image_bytes(rng, "JPEG")
    with open(os.path.join(d, "dbad_corrupt.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0" + bytes(rng.randrange(256) for _ in range(300)))
    with open(os.path.join(d, "dbad_trunc.jpg"), "wb") as f:
        f.write(good[: len(good) // 2])
    with open(os.path.join(d, "dbad_text.png"), "w") as f:
        f.write("this is not a png\n")
    with open(os.path.join(d, "notes.txt"), "w") as f:
        f.write("ignored: not an image extension\n")
    exp.update({"dbad_corrupt": "error", "dbad_trunc": "error", "dbad_text": "error"})

    # A list file: KEY<TAB>PATH, a bare relative path, and a missing file.
    ld = os.path.join(a.out, "listimgs")
    os.makedirs(ld, exist_ok=True)
    lines = []
    for i in range(3):
        p = os.path.join(ld, "l%d.jpg" % i)
        with open(p, "wb") as f:
            f.write(image_bytes(rng, "JPEG"))
        lines.append("lkey%d\t%s" % (i, os.path.abspath(p)))
        exp["lkey%d" % i] = "ok"
    with open(os.path.join(ld, "lbare.png"), "wb") as f:
        f.write(image_bytes(rng, "PNG"))
    lines.append("listimgs/lbare.png")
    exp["lbare"] = "ok"
    lines.append("lmissing\t/nonexistent/caption-test/missing.jpg")
    exp["lmissing"] = "error"
    with open(os.path.join(a.out, "list.txt"), "w") as f:
        f.write("# test list\n" + "\n".join(lines) + "\n")

    # WebDataset shards: sample NNN = NNN.jpg + NNN.txt (+ NNN.json); bad members in shard 1.
    sd = os.path.join(a.out, "shards")
    os.makedirs(sd, exist_ok=True)

    def add(tf, name, data):
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))

    for s in range(a.shards):
        with tarfile.open(os.path.join(sd, "%05d.tar" % s), "w", format=tarfile.GNU_FORMAT) as tf:
            for k in range(a.per_shard):
                key = "s%d_%03d" % (s, k)
                ext = "png" if k % 3 == 2 else "jpg"
                add(tf, key + "." + ext, image_bytes(rng, "PNG" if ext == "png" else "JPEG"))
                add(tf, key + ".txt", b"a caption from the dataset\n")
                add(tf, key + ".json", b'{"id": %d}\n' % k)
                exp[key] = "ok"
            if s == 1:
                add(tf, "../s1_escape.jpg", good)
                add(tf, "/s1_abs.jpg", good)
                add(tf, "s1_bad_text.jpg", b"not an image at all\n")
                add(tf, "s1_bad_trunc.jpg", good[: len(good) // 3])
                exp.update({"../s1_escape": "error", "/s1_abs": "error",
                            "s1_bad_text": "error", "s1_bad_trunc": "error"})
    with open(os.path.join(a.out, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
