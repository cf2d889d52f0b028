#!/bin/sh
# expect_select.sh BIN MODE - runs test_cuda_select MODE and checks the outcome against what
# this machine has. Without a usable GPU (or without the CUDA module in this build):
#   cpu  -> exit 0, backend cpu, libcublas not loaded
#   auto -> exit 0, backend cpu (fallback)
#   cuda -> non-zero exit with "no CUDA device" (module built) or "no CUDA backend module"
# With a GPU, auto and cuda must give backend cuda.
bin=$1 mode=$2
out=$("$bin" "$mode" 2>&1); rc=$?
printf '%s\n' "$out"
have_gpu=0
case "$out" in *"backend cuda"*) have_gpu=1 ;; esac
fail() { echo "expect_select: FAIL: $*"; exit 1; }
case "$mode" in
cpu)
  [ $rc -eq 0 ] || fail "cpu backend exited $rc"
  echo "$out" | grep -q '^backend cpu$' || fail "not the cpu backend"
  echo "$out" | grep -q '^cublas-loaded 0$' || fail "libcublas loaded in a CPU run" ;;
auto)
  [ $rc -eq 0 ] || fail "auto exited $rc (it must fall back to cpu)"
  echo "$out" | grep -q '^backend \(cpu\|cuda\)$' || fail "no backend line" ;;
cuda)
  if [ $have_gpu -eq 1 ]; then
    [ $rc -eq 0 ] || fail "cuda backend exited $rc"
  else
    [ $rc -ne 0 ] || fail "asking for cuda without a GPU must fail"
    echo "$out" | grep -q -e "no CUDA device" -e "no CUDA backend module" ||
      fail "the message does not say 'no CUDA device'"
    echo "$out" | grep -q -e "--device cpu" -e "-DIVL_CUDA=ON" || fail "the message gives no remedy"
  fi ;;
*) fail "unknown mode $mode" ;;
esac
echo "expect_select: ok ($mode, gpu=$have_gpu)"
