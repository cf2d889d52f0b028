"""Tile grid selection of core/image vs the reference rule.

1. Candidate lists: the C replay of CPython's set order vs real CPython interpreters (every
   one found, 3.8+) for every 1 <= min_num <= max_num <= 40, and vs the two lists printed in
   the spec.
2. Grids: thousands of (width, height, min_num, max_num) triples, many of them exact aspect
   ratio ties near the area threshold, vs preprocess_ref.grid_for.
usage: test_tiling.py IMAGE_TOOL"""
import glob
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import preprocess_ref as ref  # noqa: E402

MAXN = 40
S = 448
tool = sys.argv[1]
failures = 0


def fail(msg):
    global failures
    failures += 1
    if failures <= 20:
        print("FAIL:", msg)


def run(args, stdin=None):
    p = subprocess.run([tool] + args, input=stdin, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        sys.exit("image_tool %s failed: %s" % (args, p.stderr))
    return p.stdout


c_lists = {}
for line in run(["candidates-all", str(MAXN)]).splitlines():
    f = line.split()
    c_lists[(int(f[0]), int(f[1]))] = [tuple(map(int, t.split(","))) for t in f[2:]]

# --- 1a: the spec's printed lists (computed there with CPython 3.11.7)
spec12 = "(1,1),(1,2),(2,1),(3,1),(1,3),(2,2),(4,1),(1,4),(5,1),(1,5),(1,6),(6,1),(3,2),(2,3),(7,1),(1,7),(4,2),(2,4),(1,8),(8,1),(1,9),(3,3),(9,1),(2,5),(5,2),(10,1),(1,10),(11,1),(1,11),(12,1),(3,4),(4,3),(1,12),(6,2),(2,6)"
spec6 = "(1,1),(1,2),(2,1),(3,1),(1,3),(4,1),(1,4),(2,2),(1,5),(5,1),(6,1),(2,3),(1,6),(3,2)"
for mx, s in ((12, spec12), (6, spec6)):
    want = [tuple(map(int, t.strip("()").split(","))) for t in s.split("),(")]
    if c_lists[(1, mx)] != want:
        fail("max_num=%d: C list differs from the spec's list" % mx)

# --- 1b: every CPython we can find
prog = r"""
import json, sys
out = {}
for hi in range(1, %d + 1):
    for lo in range(1, hi + 1):
        t = set((i, j) for n in range(lo, hi + 1) for i in range(1, n + 1) for j in range(1, n + 1)
                if i * j <= hi and i * j >= lo)
        out["%%d %%d" %% (lo, hi)] = sorted(t, key=lambda x: x[0] * x[1])
print(json.dumps(out))
""" % MAXN
pythons = [sys.executable] + sorted(glob.glob("/usr/bin/python3.[0-9]*")) + \
    sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")))
seen = set()
checked = []
import json  # noqa: E402
for py in pythons:
    if not os.path.exists(py) or os.path.realpath(py) in seen or py.endswith("-config"):
        continue
    seen.add(os.path.realpath(py))
    try:
        v = subprocess.run([py, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, timeout=30).stdout.strip()
        major, minor = map(int, v.split("."))
    except Exception:
        continue
    if (major, minor) < (3, 8):   # the tuple hash changed in 3.8; the spec is about 3.8+
        continue
    out = json.loads(subprocess.run([py, "-c", prog], capture_output=True, text=True,
                                    timeout=60).stdout)
    for key, lst in out.items():
        lo, hi = map(int, key.split())
        if c_lists[(lo, hi)] != [tuple(x) for x in lst]:
            fail("python %s min=%d max=%d: C %s != %s" % (v, lo, hi, c_lists[(lo, hi)][:8], lst[:8]))
    checked.append(v)
print("candidate lists checked against CPython", ", ".join(checked),
      "for all %d (min,max) pairs up to %d" % (len(c_lists), MAXN))
if not checked:
    fail("no CPython >= 3.8 found")

# --- 2: grids
rng = random.Random(1234)
triples = []
for _ in range(4000):    # plain random sizes
    triples.append((rng.randint(1, 6000), rng.randint(1, 6000), 1, rng.randint(1, MAXN)))
for _ in range(2000):    # log-uniform, extreme aspect ratios
    triples.append((int(10 ** rng.uniform(0, 4.5)), int(10 ** rng.uniform(0, 4.5)), 1,
                    rng.randint(1, MAXN)))
for _ in range(3000):    # exact candidate ratios: ties, decided by the area rule
    mx = rng.randint(1, MAXN)
    a, b = rng.choice(ref.candidate_grids(1, mx))
    # scale so the area is near 0.5*S*S*i*j for the tied grids (k*a, k*b)
    k = rng.choice([1, 2, 3, 4])
    m = int((0.5 * S * S * k * k * a * b / (a * b)) ** 0.5) + rng.randint(-3, 3)
    m = max(1, m)
    triples.append((a * m, b * m, 1, mx))
for _ in range(1000):    # min_num > 1
    mx = rng.randint(1, MAXN)
    triples.append((rng.randint(1, 4000), rng.randint(1, 4000), rng.randint(1, mx), mx))
# areas that equal 0.5*S*S*i*j for some grids (448*224 = S*S/2): the rule's '>' is strict
for a, b in ((1, 1), (1, 2), (2, 1), (2, 2), (1, 3), (3, 2)):
    for k in (1, 2):
        triples.append((448 * k * a, 224 * k * b, 1, 12))
        triples.append((224 * k * a, 448 * k * b, 1, 12))
triples += [(1, 1, 1, 1), (1, 1, 1, 40), (448, 448, 1, 12), (896, 448, 1, 12), (100000, 1, 1, 12),
            (1, 100000, 1, 40), (1920, 1080, 1, 12), (1080, 1920, 1, 6), (4032, 3024, 1, 12)]

stdin = "".join("%d %d %d %d %d\n" % (w, h, lo, hi, S) for w, h, lo, hi in triples)
got = run(["grids"], stdin).splitlines()
if len(got) != len(triples):
    fail("grids: %d answers for %d triples" % (len(got), len(triples)))
cache = {}
for (w, h, lo, hi), line in zip(triples, got):
    if (lo, hi) not in cache:
        cache[(lo, hi)] = ref.candidate_grids(lo, hi)
    cols, rows = ref.grid_for(w, h, lo, hi, S, cache[(lo, hi)])
    nt = cols * rows + (1 if cols * rows != 1 else 0)
    if line.split() != [str(cols), str(rows), str(nt)]:
        fail("grid %dx%d min=%d max=%d: C %s, reference %d %d %d" % (w, h, lo, hi, line, cols, rows, nt))
print("%d grids compared" % len(triples))
if failures:
    print("%d failures" % failures)
    sys.exit(1)
print("OK")
