#!/usr/bin/python3
"""`internvl info` on a good model file and on altered copies of it.

  file_checks.py INTERNVL FILE.h5 WORKDIR

- the good file: exit 0, per-part counts (config formula == stored tensors), dtype, size;
- format_version 2: refused with "has format version 2, this engine reads 1; re-run
  internvl convert";
- format attribute changed: refused as not a model file;
- a tensor deleted: the counts disagree, exit 1 with MISMATCH;
- not an HDF5 file: error naming the file.
"""
import os
import shutil
import subprocess
import sys

import h5py


def run(exe, path):
    p = subprocess.run([exe, "info", path], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def main():
    exe, good, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    problems = []

    rc, out = run(exe, good)
    print(out)
    if rc != 0:
        problems.append(f"info on the good file failed (rc {rc})")
    for want in ["model", "vision", "projector", "llm", "total", "bf16", "parameters"]:
        if want not in out:
            problems.append(f"info output lacks {want!r}")
    if "MISMATCH" in out:
        problems.append("counts disagree on the good file")

    def altered(name, edit):
        p = os.path.join(work, name + ".h5")
        shutil.copy(good, p)
        with h5py.File(p, "r+") as f:
            edit(f)
        return p

    def set_version(f):
        f.attrs.modify("format_version", 2)

    def set_format(f):
        del f.attrs["format"]
        f.attrs.create("format", b"something-else")

    def drop_tensor(f):
        del f["tensors/llm.norm"]

    cases = [
        ("v2", set_version, "has format version 2, this engine reads 1; re-run internvl convert"),
        ("fmt", set_format, "not an internvl model file"),
        ("drop", drop_tensor, "MISMATCH"),
    ]
    for name, edit, want in cases:
        p = altered(name, edit)
        rc, out = run(exe, p)
        if rc == 0 or want not in out:
            problems.append(f"{name}: rc {rc}, want {want!r} in:\n{out}")
    junk = os.path.join(work, "junk.h5")
    with open(junk, "wb") as f:
        f.write(b"not hdf5 at all" * 100)
    rc, out = run(exe, junk)
    if rc == 0 or junk not in out:
        problems.append(f"junk file: rc {rc}: {out}")
    if problems:
        print("FAIL:\n  " + "\n  ".join(problems))
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
