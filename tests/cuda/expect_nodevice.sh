#!/bin/sh
# expect_nodevice.sh CMD... - CMD must either run on a GPU (exit 0) or, without one, end with
# a non-zero status and the "no CUDA device" message (not a crash or a hang).
out=$("$@" 2>&1); rc=$?
printf '%s\n' "$out" | tail -20
if printf '%s\n' "$out" | grep -q '^GPU:'; then exit $rc; fi
[ $rc -ne 0 ] || { echo "expect_nodevice: FAIL: exit 0 without a GPU"; exit 1; }
printf '%s\n' "$out" | grep -q 'no CUDA device' || { echo "expect_nodevice: FAIL: no 'no CUDA device' message"; exit 1; }
echo "expect_nodevice: ok (exit $rc, clear message)"
