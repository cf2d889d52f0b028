#!/bin/bash
# Device check for the comm layer's NCCL module, for a GPU machine that may lack the project's
# other dependencies: builds libivl_nccl.so and test_comm_nccl by hand (no CMake), runs the
# test as a singleton, under mpirun -np 1, and at np 2 on one GPU (every rank must get a clean
# -1, none may hang). Run from the repository root: bash tests/comm/device_nccl.sh
set -u
nvidia-smi -L
for t in gcc mpicc mpirun nvcc cmake; do printf '%s: ' $t; command -v $t || echo MISSING; done
CUDA=/usr/local/cuda
ls $CUDA/include/nccl.h $CUDA/include/cuda_runtime.h 2>&1
NCCL_LIB=$(ls -d $CUDA/lib64/libnccl.so* $CUDA/lib/libnccl.so* /usr/lib/x86_64-linux-gnu/libnccl.so* 2>/dev/null | head -1)
echo "nccl lib: $NCCL_LIB"
B=/tmp/ivlb; mkdir -p $B
MPIINC=$(mpicc --showme:incdirs 2>/dev/null | tr ' ' '\n' | sed 's/^/-I/' | tr '\n' ' ')
L="-L$CUDA/lib64 -L$CUDA/lib -L$(dirname ${NCCL_LIB:-/x/y}) -Wl,-rpath,$CUDA/lib64:$CUDA/lib:$(dirname ${NCCL_LIB:-/x/y})"
set -x
gcc -std=gnu11 -O2 -Wall -Wextra -Wno-unused-parameter -fPIC -shared -fvisibility=hidden -I. $MPIINC -I$CUDA/include \
  comm/nccl/comm_nccl.c -o $B/libivl_nccl.so $L -lcudart -lnccl -Wl,--no-undefined || exit 3
mpicc -std=gnu11 -O2 -Wall -I. -Itests/comm -I$CUDA/include tests/comm/test_comm_nccl.c comm/bootstrap.c comm/group.c \
  comm/ops_mpi.c comm/device.c core/check.c core/log.c core/tensor.c -DIVL_COMM_MODULE_DIR=\"$B\" $L -lcudart -ldl -lm \
  -o $B/test_comm_nccl || exit 4
set +x
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 IVL_REQUIRE_GPU=1 IVL_LOG_LEVEL=debug
echo "=== singleton"; timeout 120 $B/test_comm_nccl; echo "rc=$?"
echo "=== mpirun -np 1"; timeout 120 mpirun --oversubscribe -np 1 $B/test_comm_nccl; echo "rc=$?"
echo "=== np 2 on one GPU: rank 1 has no device 1 -> clean -1 on every rank"
IVL_REQUIRE_GPU=0 timeout 120 mpirun --oversubscribe -np 2 $B/test_comm_nccl; echo "rc=$? (77 = skipped, expected with one GPU)"
