#!/bin/bash
# What produced an output (issue 18, item 7). A model whose config.json has no _name_or_path
# still names itself on every line (the model file's model_name); every line carries the
# settings' fingerprint, and DIR/<unit>.settings.json records the settings. A resume of a
# half-written output with another prompt and tile limit, or with sampling on, is refused
# before anything is written, naming what differs; a resume with the same settings (another
# layout, a --seed that greedy decoding ignores) completes it; --allow-mixed-settings resumes
# with other settings and records both.
. "$(dirname "$0")/common.sh"
T=$W/settings; rm -rf "$T"; mkdir -p "$T"
M=$T/noname.h5
cp "$MODEL" "$M"
$PY - "$M" <<'EOF' || fail "cannot rewrite the model copy"
import h5py, json, numpy as np, sys
with h5py.File(sys.argv[1], "r+") as f:
    c = json.loads(bytes(f["config/config.json"][()]))
    c.pop("_name_or_path", None)
    del f["config/config.json"]
    f["config/config.json"] = np.frombuffer(json.dumps(c).encode(), dtype=np.uint8)
    f.attrs["model_name"] = np.bytes_("mini2b-noname")   # fixed-length, as convert writes it
EOF
A="--model $M --max-new-tokens 8 --max-tiles 2 --threads 2 --log-interval 5"
SH="--input $W/data/shards/{00000..00001}.tar"
O=$T/out
run() { timeout 60 "$BIN" caption $A $SH --out "$O" "$@"; }

# 1. a complete run: model and settings on every line, one record per output
run > "$T/run1.log" 2>&1 || { cat "$T/run1.log"; fail "first run: exit $?"; }
$PY - "$O" <<'EOF' || fail "lines or records"
import glob, json, os, sys
d = sys.argv[1]
for p in sorted(glob.glob(os.path.join(d, "*.jsonl"))):
    rec = json.load(open(p[:-len(".jsonl")] + ".settings.json"))
    runs = rec["runs"]
    assert len(runs) == 1, (p, runs)
    assert runs[0]["model"] == "mini2b-noname" and runs[0]["max_tiles"] == 2, runs[0]
    for n, line in enumerate(open(p), 1):
        j = json.loads(line)
        assert j.get("model") == "mini2b-noname", "%s:%d: model %r" % (p, n, j.get("model"))
        assert j.get("settings") == runs[0]["fingerprint"], "%s:%d: settings %r" % (p, n, j.get("settings"))
print("ok: every line names the model and the settings' fingerprint")
EOF

# 2. a half-written output, as a stopped job leaves it
cut_unit() {  # drops the last 3 lines and the .done marker of unit 00001
    head -n 5 "$O/00001.jsonl" > "$O/00001.tmp" && mv "$O/00001.tmp" "$O/00001.jsonl"
    rm -f "$O/00001.done"
}
cut_unit
before=$(cat "$O"/*.jsonl "$O"/*.settings.json | md5sum)
run --prompt "What is in this picture?" --max-tiles 1 > "$T/other.log" 2>&1
rc=$?
cat "$T/other.log"
[ $rc -eq 2 ] || fail "a resume with another prompt and --max-tiles exited $rc, expected 2"
grep -q "00000.jsonl was made with other settings" "$T/other.log" || fail "no message naming the output"
grep -q -- "--prompt \"Describe the image in detail.\" in the output, \"What is in this picture?\" now" "$T/other.log" \
    || fail "the message does not name the prompt"
grep -q -- "--max-tiles 2 in the output, 1 now" "$T/other.log" || fail "the message does not name --max-tiles"
grep -q -- "--allow-mixed-settings" "$T/other.log" || fail "the message does not name the way out"
[ "$(cat "$O"/*.jsonl "$O"/*.settings.json | md5sum)" = "$before" ] || fail "the refused run changed the output"
run --do-sample --temperature 0.7 > "$T/sample.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q -- "--do-sample false in the output, true now" "$T/sample.log" \
    || { cat "$T/sample.log"; fail "a resume with sampling on: exit $rc, or no message naming --do-sample"; }

# 3. the same settings (another layout and batch size, a seed that greedy ignores) resume
timeout 60 $MPI -np 2 "$BIN" caption $A $SH --out "$O" --tp 2 --max-seqs 2 --seed 7 > "$T/same.log" 2>&1 \
    || { cat "$T/same.log"; fail "a resume with the same settings: exit $?"; }
# the 3 keys cut off may include error lines (lines are written as images finish, so which
# ones were last depends on timing): captioned + failed must be 3, the rest skipped
sum=$(grep -o "summary: [0-9]* captioned, [0-9]* skipped (done before), [0-9]* failed" "$T/same.log")
set -- $(echo "$sum" | tr -dc '0-9 ' | tr -s ' ')
[ $# -eq 3 ] && [ $(( $1 + $3 )) -eq 3 ] && [ "$2" -eq 9 ] ||
    { cat "$T/same.log"; fail "the resume did not redo exactly the 3 missing keys ($sum)"; }
$CHECK "$O" "$EXP" --ref "$W/ref" --count 12 || fail "after the resume"

# 4. --allow-mixed-settings: both settings recorded, the new lines carry the new fingerprint
cut_unit
run --prompt "What is in this picture?" --allow-mixed-settings > "$T/mixed.log" 2>&1 \
    || { cat "$T/mixed.log"; fail "--allow-mixed-settings: exit $?"; }
grep -q "adding these" "$T/mixed.log" || fail "--allow-mixed-settings: no warning"
$PY - "$O" <<'EOF' || fail "mixed record"
import json, os, sys
d = sys.argv[1]
runs = json.load(open(os.path.join(d, "00001.settings.json")))["runs"]
assert len(runs) == 2 and runs[1]["prompt"] == "What is in this picture?", runs
fps = [json.loads(l)["settings"] for l in open(os.path.join(d, "00001.jsonl"))]
assert fps == [runs[0]["fingerprint"]] * 5 + [runs[1]["fingerprint"]] * 3, fps
assert len(json.load(open(os.path.join(d, "00000.settings.json")))["runs"]) == 1
print("ok: the mixed output records both settings and each line says which")
EOF
$CHECK "$O" "$EXP" --count 12 || fail "after the mixed resume"
echo PASS
