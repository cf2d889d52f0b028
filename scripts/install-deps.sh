#!/usr/bin/env bash
# install-deps.sh - installs every Debian 12 package the engine needs to build, run and test.
#
# Idempotent and non-interactive: when everything is present it exits in a fraction of a
# second without touching the network. Needs root (or sudo).
#
#   scripts/install-deps.sh            build + run deps, plus numpy and the sentencepiece module
#                                      (the demo checkpoint generator), patchelf (bundle.sh)
#   scripts/install-deps.sh --tests    also the test/bench deps: torch (Python reference), h5py,
#                                      Pillow, sentencepiece module, Slurm + munge, clang/libFuzzer,
#                                      valgrind, gnuplot, Node.js + npm (when absent)
#   scripts/install-deps.sh --check    only report what is missing (exit 1 if anything is)
#
# CUDA is not installed here: the build uses the CUDA 13 toolkit at /usr/local/cuda when it
# exists (nvcc, cuBLAS, NCCL) and builds CPU-only otherwise.
set -euo pipefail

WITH_TESTS=0; CHECK_ONLY=0
for a in "$@"; do
  case "$a" in
    --tests) WITH_TESTS=1 ;;
    --check) CHECK_ONLY=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option $a (see --help)" >&2; exit 2 ;;
  esac
done

PKGS=(
  build-essential cmake pkg-config git ca-certificates file
  openmpi-bin libopenmpi-dev                      # MPI: mpicc, mpirun
  libprotobuf-c-dev protobuf-c-compiler           # rank-to-rank messages
  libhdf5-dev hdf5-tools                          # model file (serial flavour), h5dump
  libopenblas-dev                                 # CPU GEMM
  libjpeg-dev libpng-dev                          # image decoding (libjpeg-turbo, libpng)
  libwebp-dev libgif-dev libtiff-dev zlib1g-dev   #   WebP, GIF, TIFF (BMP: core/image/decode_bmp.c)
  libsentencepiece-dev sentencepiece              # tokenizer library + spm_train
  libarchive-dev libcjson-dev                     # tar shards, JSON
  libmicrohttpd-dev curl                          # `internvl serve` (HTTP), its tests
  python3 python3-numpy                           # test/demo checkpoint generator,
  python3-sentencepiece python3-protobuf          #   which also writes the tokenizer files
  patchelf xz-utils                               # scripts/bundle.sh: $ORIGIN RUNPATHs, .tar.xz
)
if [ "$WITH_TESTS" = 1 ]; then
  PKGS+=(
    python3-torch python3-h5py python3-pil          # Python reference, fixtures
    slurmctld slurmd slurm-client munge           # single-node Slurm for the caption tests
    iproute2 bc                                   # tests/multinode: nodes as network namespaces
    clang libclang-rt-14-dev llvm valgrind        # fuzzing, sanitizers
    gnuplot-nox                                   # bench/plot
    imagemagick-6-doc                             # real JPEG/PNG/GIF images for tests/image (8 MB)
  )
  # The server's tests drive it with the official OpenAI Node client (npm-installed by the
  # test): Debian's Node.js and npm, unless a Node.js with npm is already there (NodeSource).
  if ! command -v npm > /dev/null 2>&1; then PKGS+=(nodejs npm); fi
fi

installed=" $(dpkg-query -W -f='${Package}:${db:Status-Abbrev}\n' "${PKGS[@]}" 2>/dev/null \
  | awk -F: '$2 ~ /^ii/ {printf "%s ", $1}' || true) "
missing=()
for p in "${PKGS[@]}"; do
  case "$installed" in *" $p "*) ;; *) missing+=("$p") ;; esac
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps.sh: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "install-deps.sh: missing: ${missing[*]}"
[ "$CHECK_ONLY" = 1 ] && exit 1

SUDO=()
[ "$(id -u)" != 0 ] && SUDO=(sudo -E)
export DEBIAN_FRONTEND=noninteractive
APT=(-y -q -o DPkg::Lock::Timeout=900 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
t0=$(date +%s)
"${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=900 update -q
"${SUDO[@]}" apt-get install "${APT[@]}" --no-install-recommends "${missing[@]}"
echo "install-deps.sh: installed ${#missing[@]} packages in $(( $(date +%s) - t0 )) s"
command -v mpicc >/dev/null && command -v protoc-c >/dev/null && command -v spm_train >/dev/null
pkg-config --exists libprotobuf-c hdf5-serial libcjson libarchive sentencepiece openblas libpng libjpeg libwebp libwebpdemux libtiff-4 zlib ompi-c
test -e /usr/include/gif_lib.h
