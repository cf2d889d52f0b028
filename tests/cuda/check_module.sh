#!/bin/sh
# check_module.sh MODULE - the CUDA module is loadable on machines without the NVIDIA driver:
# no NEEDED libcuda.so (the driver API: its stub links but fails to load), no cuBLAS other
# than cuBLASLt, both entry points exported.
so=$1
fail() { echo "check_module: FAIL: $*"; exit 1; }
[ -f "$so" ] || fail "$so was not built"
needed=$(readelf -d "$so" | grep NEEDED) || fail "readelf failed"
echo "$needed"
echo "$needed" | grep -q 'libcuda\.so' && fail "$so links the driver library libcuda.so"
echo "$needed" | grep -q 'libcudart' || fail "$so does not link the CUDA runtime"
echo "$needed" | grep -q 'libcublasLt' || fail "$so does not link cuBLASLt"
echo "$needed" | grep -q 'libcublas\.so' && fail "$so links full cuBLAS (only cuBLASLt is used)"
syms=$(nm -D --defined-only "$so") || fail "nm failed"
for s in ivl_cuda_probe ivl_cuda_backend_create; do
  echo "$syms" | grep -q " T $s\$" || fail "$so does not export $s"
done
# Kernels must not leak symbols beyond the entry points and the core helpers.
extra=$(echo "$syms" | awk '$2 == "T" && $3 !~ /^(ivl_|_init$|_fini$)/ {print $3}')
[ -z "$extra" ] || fail "unexpected exported symbols: $extra"
echo "check_module: ok"
