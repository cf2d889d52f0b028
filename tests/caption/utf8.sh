#!/bin/bash
# Issue 18, class 4: every result line is valid UTF-8 JSON. File names, tar member names and
# prompts with bytes that are not UTF-8 are escaped in a reversible way (docs/caption.md,
# "Keys that are not UTF-8": \xHH for such a byte, \\ for a backslash, and key_hex with the
# raw bytes), and a rerun still recognises every key as done.
. "$(dirname "$0")/common.sh"
T=$W/utf8; rm -rf "$T"; mkdir -p "$T/dir"
GOOD=$W/data/listimgs/l0.jpg
cp "$GOOD" "$T/dir/$(printf 'img\xff')".jpg                 # not UTF-8
cp "$GOOD" "$T/dir/$(printf 'caf\xc3\xa9')".jpg             # UTF-8 (café): unchanged
cp "$GOOD" "$T/dir/$(printf 'back\\sl\xe9sh')".jpg        # a backslash and a Latin-1 byte
$PY - "$T/shard.tar" "$GOOD" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.GNU_FORMAT, encoding="utf-8",
                  errors="surrogateescape") as tf:
    tf.add(sys.argv[2], arcname=b"t\xfe\xc3.jpg".decode("utf-8", "surrogateescape"))
    tf.add(sys.argv[2], arcname="ok_member.jpg")
PY
PROMPT=$(printf 'Describe \xff this.')
run() { timeout -k 5 60 "$BIN" caption $ARGS --prompt "$PROMPT" --input "$T/dir" --input "$T/shard.tar" --out "$T/out" "$@"; }
run > "$T/run1.log" 2>&1 || { cat "$T/run1.log"; fail "first run"; }
cat "$T/run1.log"
$PY - "$T/out" <<'PY' || fail "the output is not strict UTF-8 JSON with reversible keys"
import glob, json, os, sys
want = {b"img\xff": "img\\xff", "café".encode(): "café", b"back\\sl\xe9sh": "back\\\\sl\\xe9sh",
        b"t\xfe\xc3": "t\\xfe\\xc3", b"ok_member": "ok_member"}
seen = {}
for p in glob.glob(os.path.join(sys.argv[1], "*.jsonl")):
    for n, raw in enumerate(open(p, "rb").read().split(b"\n")[:-1], 1):
        try:
            j = json.loads(raw.decode("utf-8"))          # strict: no byte outside UTF-8
        except (UnicodeDecodeError, ValueError) as e:
            sys.exit("%s:%d: not strict UTF-8 JSON: %s: %r" % (p, n, e, raw[:120]))
        raw_key = bytes.fromhex(j["key_hex"]) if "key_hex" in j else j["key"].encode()
        if raw_key not in want:
            sys.exit("unexpected key %r (raw %r)" % (j["key"], raw_key))
        if j["key"] != want[raw_key]:
            sys.exit("raw key %r written as %r, expected %r" % (raw_key, j["key"], want[raw_key]))
        if ("key_hex" in j) != (raw_key != j["key"].encode()):
            sys.exit("key_hex must be there exactly when the key was escaped: %r" % j)
        if "error" in j:
            sys.exit("key %r failed: %s" % (j["key"], j["error"]))
        if j["prompt"] != "Describe \\xff this.":
            sys.exit("prompt written as %r" % j["prompt"])
        seen[raw_key] = 1
if len(seen) != len(want):
    sys.exit("keys missing: %r" % sorted(set(want) - set(seen)))
print("ok: %d keys, all lines strict UTF-8 JSON" % len(seen))
PY
# The rerun recognises every (escaped) key as done.
run > "$T/run2.log" 2>&1 || { cat "$T/run2.log"; fail "rerun"; }
grep -q "0 captioned, 5 skipped" "$T/run2.log" || { cat "$T/run2.log"; fail "rerun did not skip every key"; }
# A result file written before this change (raw bytes in the key) is still recognised: its
# key is not captioned again.
rm -rf "$T/old" && mkdir -p "$T/old"
u=$(ls "$T/out" | grep '^dir-.*\.jsonl$'); u=${u%.jsonl}
printf '{"key":"img\xff","caption":"old"}\n' > "$T/old/$u.jsonl"
timeout -k 5 60 "$BIN" caption $ARGS --prompt "$PROMPT" --input "$T/dir" --out "$T/old" > "$T/run3.log" 2>&1 || { cat "$T/run3.log"; fail "run over an old output"; }
grep -q "2 captioned, 1 skipped" "$T/run3.log" || { cat "$T/run3.log"; fail "the old raw key was not recognised"; }
echo PASS
