#!/bin/bash
# Job-level output problems: a file size limit hit in the middle (as a full disk), a
# read-only output folder, an empty input. Each stops with a clear message and exit 1, and
# never leaves a torn line; after the limit is lifted the rerun completes.
. "$(dirname "$0")/common.sh"
T=$W/disk; rm -rf "$T"; mkdir -p "$T"
# 1. A file size limit of 1 KiB (as a full disk), put on the running process once the model
#    is loaded (MPI start-up writes bigger files of its own, so `ulimit -f` before the start
#    would stop MPI rather than us). Several output files grow past 1 KiB.
#    Its log goes through a pipe (cat writes the file): the limit applies to every file the
#    process writes, and the log itself passes 1 KiB.
timeout 60 "$BIN" caption $ARGS $INPUTS --out "$T/full" --flush-interval 0 > >(cat > "$T/full.log") 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q "KV cache" "$T/full.log" && break; sleep 0.05; done
lim=0
for p in $(pgrep -P $pid); do   # timeout's children: the engine (not the log's cat)
  [ "$(cat /proc/$p/comm 2>/dev/null)" != cat ] || continue
  prlimit --pid $p --fsize=1024 || fail "prlimit"
  lim=1
done
[ $lim = 1 ] || fail "no internvl process to limit"
wait $pid
rc=$?
for _ in $(seq 100); do grep -q "caption stopped" "$T/full.log" && break; sleep 0.05; done   # cat's last write
cat "$T/full.log"
[ $rc -eq 1 ] || fail "file size limit: exit $rc, expected 1"
grep -q "cannot write results to .*File too large.*finished results are kept" "$T/full.log" || fail "no clear message"
$CHECK "$T/full" "$EXP" --partial --ref "$W/ref" || fail "torn or wrong lines after the write failure"
timeout 60 "$BIN" caption $ARGS $INPUTS --out "$T/full" > "$T/full2.log" 2>&1 || { cat "$T/full2.log"; fail "rerun"; }
$CHECK "$T/full" "$EXP" --complete --ref "$W/ref" --count 29 || fail "after the rerun"
# 2. A read-only output folder (as root, permissions do not apply: run as nobody).
mkdir -p "$T/ro" && chmod 555 "$T/ro"
AS=""; [ "$(id -u)" = 0 ] && AS="runuser -u nobody --"
# As nobody the binary and the test data must be reachable (a checkout under a private home,
# e.g. /root, is not): otherwise this case would fail for the wrong reason, so it is skipped.
if [ -n "$AS" ] && ! $AS sh -c "test -x '$BIN' && test -r '$MODEL' && test -x '$T'" 2>/dev/null; then
  echo "skip: read-only folder case: the build tree is not reachable by user nobody"
else
  $AS timeout 30 "$BIN" caption $ARGS $INPUTS --out "$T/ro/out" > "$T/ro.log" 2>&1
  rc=$?
  cat "$T/ro.log"
  [ $rc -eq 1 ] || fail "read-only folder: exit $rc, expected 1"
  grep -q "cannot create the output folder $T/ro/out: Permission denied" "$T/ro.log" || fail "no clear message"
fi
chmod 755 "$T/ro"
# 3. An empty input folder.
mkdir -p "$T/empty"
timeout 30 "$BIN" caption $ARGS --input "$T/empty" --out "$T/eo" > "$T/empty.log" 2>&1
rc=$?
cat "$T/empty.log"
[ $rc -eq 1 ] && grep -q "no input images" "$T/empty.log" || fail "empty input: exit $rc"
echo PASS
