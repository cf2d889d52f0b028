#!/bin/bash
# faults_io.sh INTERNVL DATA - file-system faults around a job (tests/parallel/faults.sh covers
# layouts, a missing file on one rank and killed ranks; tests/weights the bad checkpoints):
#  1. the model file truncated at several offsets: a clear error naming the file, no crash;
#  2. the model file truncated or removed WHILE a forward job loads it: the job either
#     finishes (it read everything before) or fails with a message naming the file, never a
#     signal or a hang;
#  3. `forward --dump` and `convert` onto a full file system and a read-only one (small
#     tmpfs mounts, so this part needs root; skipped otherwise) and into a read-only folder
#     (as user nobody): a clear error, no output file and no temporary file left behind.
# Every command runs under `timeout 60`; exit status >= 124 (timeout or a signal) fails.
set -u
bin=$1 data=$2
model=$data/h5/mini2b-tiny.h5
big=$data/h5/mini2b-realvocab.h5
in=$data/ref/mini2b-tiny/one_image.in.h5
bigin=$data/ref/mini2b-realvocab/text_only.in.h5
hf=$data/hf/mini2b-tiny
work=$(mktemp -d)
mnt=$work/mnt
cleanup() { mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"; rm -rf "$work"; }
trap cleanup EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

# run NAME CMD...: runs with a 60 s limit, output in $work/log, status in $rc.
run() {
  local name=$1; shift
  timeout 60 "$@" > "$work/log" 2>&1
  rc=$?
}

# expect_error NAME PATTERN OUTPUT CMD...: fails cleanly (1..123), output matches PATTERN,
# neither OUTPUT nor OUTPUT.tmp-* exists afterwards.
expect_error() {
  local name=$1 pat=$2 out=$3; shift 3
  run "$name" "$@"
  if [ $rc -eq 0 ] || [ $rc -ge 124 ] || ! grep -Eq "$pat" "$work/log"; then
    fail "$name: rc=$rc, expected a clean failure matching /$pat/"
    tail -8 "$work/log"
  else
    echo "ok   $name: rc=$rc: $(grep -Eo "$pat.{0,80}" "$work/log" | head -1)"
  fi
  if ls "$out" "$out".tmp-* >/dev/null 2>&1; then
    fail "$name: left $(ls -d "$out" "$out".tmp-* 2>/dev/null | tr '\n' ' ')"
  fi
}

fwd() { echo "$bin" forward --model "$1" --inputs "$2" --dump "$3" --max-new-tokens 2; }

# 1. truncated copies
size=$(stat -c %s "$model")
for off in 0 7 512 4096 $((size / 4)) $((size / 2)) $((size - 100)) $((size - 1)); do
  cp "$model" "$work/t.h5" && truncate -s "$off" "$work/t.h5"
  expect_error "model truncated at $off" "t\.h5" "$work/o.h5" $(fwd "$work/t.h5" "$in" "$work/o.h5")
done

# 2. truncated / removed while loading (the 28 MB model: loading takes a moment)
for delay in 0.1 0.3 0.6 1.0; do
  for what in truncate remove; do
    cp "$big" "$work/b.h5"
    rm -f "$work/o.h5"
    timeout 60 $(fwd "$work/b.h5" "$bigin" "$work/o.h5") > "$work/log" 2>&1 &
    pid=$!
    sleep "$delay"
    if [ $what = truncate ]; then truncate -s $(( $(stat -c %s "$big") / 3 )) "$work/b.h5"
    else rm -f "$work/b.h5"; fi
    wait $pid
    rc=$?
    if [ $rc -ge 124 ]; then
      fail "$what at ${delay}s: rc=$rc (signal or timeout)"; tail -8 "$work/log"
    elif [ $rc -ne 0 ] && ! grep -q "b\.h5" "$work/log"; then
      fail "$what at ${delay}s: rc=$rc without naming the file"; tail -8 "$work/log"
    elif [ $rc -ne 0 ] && ls "$work/o.h5" "$work"/o.h5.tmp-* >/dev/null 2>&1; then
      fail "$what at ${delay}s: failed but left an output file"
    else
      echo "ok   $what at ${delay}s: rc=$rc $( [ $rc -ne 0 ] && grep -Eo 'error: .{0,100}' "$work/log" | head -1)"
    fi
  done
done

# 3. full and read-only file systems, read-only folder
mkdir -p "$mnt"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=64k ivl-full "$mnt" 2>/dev/null; then
  expect_error "forward --dump on a full disk" "No space left|disk full|close failed" "$mnt/o.h5" \
    $(fwd "$model" "$in" "$mnt/o.h5")
  expect_error "convert on a full disk" "No space left|disk full|close failed|write" "$mnt/m.h5" \
    "$bin" convert --hf "$hf" --out "$mnt/m.h5" --no-progress
  mount -o remount,ro "$mnt"
  expect_error "forward --dump on a read-only fs" "Read-only file system" "$mnt/o.h5" \
    $(fwd "$model" "$in" "$mnt/o.h5")
  expect_error "convert on a read-only fs" "Read-only file system" "$mnt/m.h5" \
    "$bin" convert --hf "$hf" --out "$mnt/m.h5" --no-progress
  umount "$mnt"
else
  echo "skip full/read-only file systems: needs root and tmpfs mounts"
fi
ro=$work/ro
mkdir -p "$ro" && chmod 555 "$ro" && chmod 755 "$work"
asuser=()
if [ "$(id -u)" = 0 ]; then
  asuser=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  chmod o+r "$work" 2>/dev/null
fi
# As another user the binary and inputs must be reachable (a checkout under a private home,
# e.g. /root, is not): otherwise exec itself fails with "Permission denied" and the case
# would pass for the wrong reason, so it is skipped.
if [ ${#asuser[@]} -gt 0 ] && ! "${asuser[@]}" sh -c "test -x '$bin' && test -r '$model' && test -r '$in' && test -r '$hf/config.json'" 2>/dev/null; then
  echo "skip: read-only folder cases: the build tree is not reachable by an unprivileged user"
else
  expect_error "forward --dump into a read-only folder" "Permission denied" "$ro/o.h5" \
    "${asuser[@]}" $(fwd "$model" "$in" "$ro/o.h5")
  expect_error "convert into a read-only folder" "Permission denied|cannot create" "$ro/m.h5" \
    "${asuser[@]}" "$bin" convert --hf "$hf" --out "$ro/m.h5" --no-progress
fi

[ $fails -eq 0 ] && echo "faults_io: all cases passed" || echo "faults_io: $fails failed"
exit $((fails > 0))
