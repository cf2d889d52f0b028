#!/usr/bin/python3
"""Bad quantized inputs (issue 16): each is a clear error that names the tensor (or the
option) and the numbers, with a non-zero exit and no output file left behind.

usage: bad_inputs.py INTERNVL TEST_DATA   (needs the quant_models fixture)
"""
import glob
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

BIN, DATA = sys.argv[1], sys.argv[2]
Q = os.path.join(DATA, "quant")
WORK = os.path.join(Q, "bad")
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
failures = 0


def run(args, mpi=0):
    cmd = [BIN] + args
    if mpi:
        cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(mpi),
               "-x", "OMP_NUM_THREADS=1"] + cmd
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    return p.returncode, p.stdout + p.stderr


def expect(what, args, needles, out=None, mpi=0):
    global failures
    rc, text = run(args, mpi)
    missing = [n for n in needles if n not in text]
    left = []
    if out:
        left = [p for p in glob.glob(out + "*") if os.path.exists(p)]
    ok = rc != 0 and not missing and not left
    print(("ok   " if ok else "FAIL ") + what)
    last = [l for l in text.strip().splitlines() if "rror" in l or "usage" in l][-1:] or \
        text.strip().splitlines()[-1:]
    print("     " + (last[0] if last else "(no output)"))
    if not ok:
        print(f"     rc {rc}, missing {missing}, left behind {left}\n{text[-2000:]}")
        failures += 1


def copy_model(name):
    dst = os.path.join(WORK, name)
    shutil.copy(os.path.join(Q, "h5", "mini2b-tiny-int4.h5"), dst)
    return dst


inp = os.path.join(DATA, "ref", "mini2b-tiny", "text_only.in.h5")

# 1. a scale tensor of the wrong shape
m = copy_model("bad_scales.h5")
with h5py.File(m, "r+") as f:
    del f["tensors/llm.layers.1.o.scales"]
    f["tensors"].create_dataset("llm.layers.1.o.scales", data=np.ones((64, 3), np.float32))
out = os.path.join(WORK, "bad_scales.out.h5")
for cmd in (["info", m], ["forward", "--model", m, "--inputs", inp, "--dump", out]):
    expect(f"scales of the wrong shape ({cmd[0]})", cmd,
           ["llm.layers.1.o.scales", "[64, 3]", "expected [64, 2]"], out if cmd[0] == "forward" else None)

# 2. a group size that does not divide the input width: at conversion and in a file
hf = os.path.join(DATA, "hf", "mini2b-tiny")
out = os.path.join(WORK, "g48.h5")
expect("--group-size 48 (convert)", ["convert", "--hf", hf, "--out", out, "--quantize", "int4",
                                     "--group-size", "48", "--no-progress"],
       ["group size 48", "input width 64", "llm.layers.0.q"], out)
m = copy_model("bad_group.h5")
with h5py.File(m, "r+") as f:
    f["tensors/llm.layers.0.q"].attrs["group_size"] = np.int64(48)
out = os.path.join(WORK, "bad_group.out.h5")
expect("group_size 48 in the file (forward)", ["forward", "--model", m, "--inputs", inp, "--dump", out],
       ["llm.layers.0.q", "group size 48", "input width 64"], out)

# 3. unknown quantization method / bit width, in a file and in an AWQ config
m = copy_model("bad_quant.h5")
with h5py.File(m, "r+") as f:
    ds = f["tensors/llm.layers.2.down"]
    ds.attrs["quant"] = np.bytes_("int3")
out = os.path.join(WORK, "bad_quant.out.h5")
expect("quant 'int3' in the file", ["forward", "--model", m, "--inputs", inp, "--dump", out],
       ["llm.layers.2.down", "unknown quantization 'int3'"], out)
awq = os.path.join(Q, "hf", "mini2b-tiny-awq-src")
for key, val, needles in (("quant_method", "gptq", ["quant_method 'gptq'", "not supported"]),
                          ("bits", 8, ["AWQ with 8 bits"]),
                          ("version", "gemv", ["version 'gemv'"])):
    d = os.path.join(WORK, f"awq-{key}")
    shutil.copytree(awq, d)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    cfg["llm_config"]["quantization_config"][key] = val
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    out = os.path.join(WORK, f"awq-{key}.h5")
    expect(f"AWQ config {key} = {val}", ["convert", "--hf", d, "--out", out, "--no-progress"],
           needles, out)
out = os.path.join(WORK, "int3.h5")
expect("--quantize int3", ["convert", "--hf", hf, "--out", out, "--quantize", "int3"],
       ["--quantize int3", "int8 or int4"], out)

# 4. an AWQ part of the wrong shape
d = os.path.join(WORK, "awq-shape")
shutil.copytree(awq, d)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gen"))
import make_awq  # noqa: E402
t = make_awq.read_all(d)
name = "language_model.model.layers.0.attention.wo.scales"
dt, raw, shape = t[name]
t[name] = (dt, raw[: len(raw) // 2], (shape[0] // 2, shape[1]))
make_awq.write(os.path.join(d, "model.safetensors"), t)
out = os.path.join(WORK, "awq-shape.h5")
expect("AWQ scales of the wrong shape", ["convert", "--hf", d, "--out", out, "--no-progress"],
       [name, "[1, 64]", "expected float [2, 64]"], out)

# 5. --quantize on an already quantized checkpoint
out = os.path.join(WORK, "twice.h5")
expect("--quantize on the AWQ checkpoint", ["convert", "--hf", awq, "--out", out, "--quantize",
                                            "int8", "--no-progress"],
       ["already quantized", "quant_method 'awq', 4 bits"], out)

# 6. a tensor-parallel share that would split a group (int4 group 32, down has 160 inputs:
# 80 per rank)
m = os.path.join(Q, "h5", "mini2b-tiny-int4.h5")
out = os.path.join(WORK, "tp2.out.h5")
expect("tp 2 share splitting a group", ["forward", "--model", m, "--inputs", inp, "--dump", out,
                                        "--tp", "2"],
       ["llm.layers.0.down", "group 32", "[80, 160)", "multiple of 32"], out, mpi=2)

print("bad_inputs: " + ("all checks passed" if not failures else f"{failures} FAILED"))
sys.exit(1 if failures else 0)
