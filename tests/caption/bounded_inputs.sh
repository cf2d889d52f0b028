#!/bin/bash
# Issue 18, class 3: inputs are read with bounds. Only regular files are read (a FIFO must not
# hang the job, a device must not fill the memory), a file above the size limit
# (--max-member-mb, as for tar members) is refused before it is read, and a folder walk that
# meets a symlink loop neither hangs nor captions one image under many keys.
. "$(dirname "$0")/common.sh"
T=$W/bounded; rm -rf "$T"; mkdir -p "$T"
GOOD=$W/data/listimgs/l0.jpg
expect() {  # out: write EXPECTED json from "key=status" arguments
    local f=$1; shift
    $PY -c 'import json,sys; json.dump(dict(a.split("=",1) for a in sys.argv[2:]), open(sys.argv[1],"w"))' "$f" "$@"
}
has_error() {  # out key pattern
    grep -h "\"key\":\"$2\"" "$1"/*.jsonl | grep -q "\"error\":\"[^\"]*$3" ||
        fail "key $2: no error line matching '$3': $(grep -h "\"key\":\"$2\"" "$1"/*.jsonl)"
}
# 1. A FIFO with no writer and a 3 MiB file over a 1 MiB limit, next to a good image.
mkfifo "$T/fifo.jpg"
{ printf '\xff\xd8\xff\xe0'; head -c 3145728 /dev/zero; } > "$T/big.jpg"
printf 'kgood\t%s\nkfifo\t%s\nkbig\t%s\n' "$GOOD" "$T/fifo.jpg" "$T/big.jpg" > "$T/list1.txt"
timeout -k 5 30 "$BIN" caption $ARGS --max-member-mb 1 --input "$T/list1.txt" --out "$T/o1" > "$T/o1.log" 2>&1
rc=$?
cat "$T/o1.log"
[ $rc -eq 124 ] && fail "the job hung on a FIFO"
[ $rc -eq 0 ] || fail "list with a FIFO and a big file: exit $rc"
expect "$T/e1.json" kgood=ok kfifo=error kbig=error
$CHECK "$T/o1" "$T/e1.json" --complete --count 3 || fail "output 1"
has_error "$T/o1" kfifo "is a FIFO, not a regular file"
has_error "$T/o1" kbig "3145732 bytes, above the limit of 1048576"
# 2. A character device (would be read forever) and a directory named like an image.
mkdir -p "$T/folder.jpg"
printf 'kzero\t/dev/zero\nkdir\t%s\nkgood\t%s\n' "$T/folder.jpg" "$GOOD" > "$T/list2.txt"
timeout -k 5 30 "$BIN" caption $ARGS --input "$T/list2.txt" --out "$T/o2" > "$T/o2.log" 2>&1
rc=$?
cat "$T/o2.log"
[ $rc -eq 0 ] || fail "list with a device and a folder: exit $rc"
expect "$T/e2.json" kgood=ok kzero=error kdir=error
$CHECK "$T/o2" "$T/e2.json" --complete --count 3 || fail "output 2"
has_error "$T/o2" kzero "is a character device, not a regular file"
has_error "$T/o2" kdir "is a directory, not a regular file"
# 3. A folder with symlink loops (to the parent, to itself) and a symlink to a sibling folder
#    (no loop: its images are captioned under that path too).
mkdir -p "$T/tree/a"
cp "$GOOD" "$T/tree/a/img.jpg"
ln -s .. "$T/tree/a/up"
ln -s . "$T/tree/a/self"
ln -s a "$T/tree/b"
timeout -k 5 30 "$BIN" caption $ARGS --input "$T/tree" --out "$T/o3" > "$T/o3.log" 2>&1
rc=$?
cat "$T/o3.log"
[ $rc -eq 0 ] || fail "folder with symlink loops: exit $rc"
expect "$T/e3.json" a/img=ok b/img=ok
$CHECK "$T/o3" "$T/e3.json" --complete --count 2 || fail "output 3"
grep -q "symlink loop: .*tree/a/up leads back to .*tree, a folder of the walk's own path; not followed" "$T/o3.log" || fail "no warning about the loop"
echo PASS
