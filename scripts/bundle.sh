#!/usr/bin/env bash
# bundle.sh - packs a relocatable build of the engine for machines without root or apt (a
# cluster login node, a GPU box without the Debian packages): unpack anywhere and run.
#
#   scripts/bundle.sh [--with-cuda-libs] [--build-dir DIR] OUT.tar.xz   (or OUT.tar.zst, .tar.gz)
#
# After scripts/install-deps.sh, on Debian 12. It builds DIR (default build-bundle: Release,
# no tests, the CUDA modules when the toolkit is at /usr/local/cuda; IVL_CUDA=OFF in the
# environment builds CPU-only) and packs one folder, named after OUT (internvl-bundle for
# internvl-bundle.tar.xz):
#   bin/internvl          runs libexec/internvl with the bundle's Open MPI paths set
#   bin/mpirun            runs Open MPI's orterun the same way (Open MPI 4.1.4 from Debian)
#   bin/internvl-env      those paths: `. bin/internvl-env` (bash) or `bin/internvl-env CMD`
#   bin/orterun, orted    Open MPI's launcher and daemon (a one-rank run starts orted itself)
#   bin/internvl-orted    orted with those paths, the daemon mpirun starts on other nodes
#   libexec/internvl      the executable
#   lib/                  every library it, Open MPI and PMIx load, except glibc and the CUDA
#                         driver; the CUDA modules libivl_cuda.so and libivl_nccl.so
#   lib/openmpi, lib/pmix Open MPI's and PMIx's components, without the UCX, OFI, verbs, PSM and
#                         OpenSHMEM ones (Debian's own openmpi-mca-params.conf turns those off)
#   share/, etc/          Open MPI's and PMIx's help texts, the MCA parameter file
# Every ELF file gets a RUNPATH relative to $ORIGIN, so nothing needs LD_LIBRARY_PATH; Open MPI
# is relocated by its documented means, OPAL_PREFIX and the OPAL_*DIR variables (PMIx: PMIX_*),
# which bin/internvl-env sets relative to its own place.
#
# CUDA: the toolkit's libraries (cudart, cuBLAS, cuBLASLt, NCCL: hundreds of MB) stay out by
# default; the modules' RUNPATH is $ORIGIN:/usr/local/cuda/lib64:/usr/local/cuda/lib, so they
# load the target's toolkit (or what LD_LIBRARY_PATH names). --with-cuda-libs copies them into
# lib/ as well, for a cluster without a toolkit (only the CUDA driver is needed there).
#
# It prints the bundle's size. scripts/fresh-debian-check.sh --bundle unpacks it in a Debian
# root without the engine's packages and runs the demo there.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

WITH_CUDA_LIBS=0; BUILD=build-bundle; OUT=
while [ $# -gt 0 ]; do
  case "$1" in
    --with-cuda-libs) WITH_CUDA_LIBS=1 ;;
    --build-dir) BUILD=${2:?--build-dir needs a folder}; shift ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    -*) echo "bundle.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) [ -z "$OUT" ] || { echo "bundle.sh: one OUT file only (see --help)" >&2; exit 2; }
       OUT=$1 ;;
  esac
  shift
done
[ -n "$OUT" ] || { echo "usage: scripts/bundle.sh [--with-cuda-libs] [--build-dir DIR] OUT.tar.xz" >&2; exit 2; }
case "$OUT" in
  *.tar.xz) COMPRESS=(xz -T0 -6) ;;
  *.tar.zst) COMPRESS=(zstd -q -T0 -19 --long=27) ;;
  *.tar.gz) COMPRESS=(gzip -9) ;;
  *) echo "bundle.sh: OUT must end in .tar.xz, .tar.zst or .tar.gz (got $OUT)" >&2; exit 2 ;;
esac
NAME=$(basename "$OUT"); NAME=${NAME%.tar.*}
case "$OUT" in /*) ;; *) OUT=$REPO/$OUT ;; esac

need() { # need TOOL FIX
  command -v "$1" >/dev/null || { echo "bundle.sh: $1 not found; $2" >&2; exit 2; }
}
need patchelf "install it with scripts/install-deps.sh (or apt-get install patchelf)"
need orterun "install Open MPI with scripts/install-deps.sh"
need ompi_info "install Open MPI with scripts/install-deps.sh"
need "${COMPRESS[0]}" "install it (apt-get install xz-utils / zstd / gzip) or pick another OUT suffix"
T0=$(date +%s)

# ---- 1. the build -----------------------------------------------------------------------------
echo "== bundle: building $BUILD (Release, IVL_CUDA=${IVL_CUDA:-AUTO})"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DIVL_TESTS=OFF -DIVL_CUDA="${IVL_CUDA:-AUTO}" >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target internvl >/dev/null
EXE=$BUILD/launcher/internvl
CUDA_MODS=()
if cmake --build "$BUILD" --target help | grep -w ivl_cuda >/dev/null; then   # configured with CUDA
  CUDA_MODS=("$BUILD/core/cuda/libivl_cuda.so" "$BUILD/comm/libivl_nccl.so")
fi
CUDA_DIR=
[ "${#CUDA_MODS[@]}" -gt 0 ] && CUDA_DIR=$(readlink -f /usr/local/cuda)

# ---- 2. the files ------------------------------------------------------------------------------
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/ivl-bundle.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
B=$STAGE/$NAME
mkdir -p "$B"/{bin,libexec,lib/openmpi,lib/pmix,share/openmpi,share/pmix,etc}
cp "$EXE" "$B/libexec/internvl"
for m in "${CUDA_MODS[@]}"; do cp "$m" "$B/lib/"; done

ompi_path() { ompi_info --path "$1" | sed 's/^[^:]*: *//'; }
OMPI_COMPONENTS=$(ompi_path pkglibdir)
OMPI_HELP=$(ompi_path pkgdatadir)
cp "$(command -v orterun)" "$(command -v orted)" "$B/bin/"
cp "$OMPI_HELP"/help-*.txt "$B/share/openmpi/"

# Components whose libraries are fabric stacks (or OpenSHMEM) stay out: they are tens of MB,
# need kernel drivers the target may not have, and Debian's own openmpi-mca-params.conf turns
# them off (btl ^uct,openib,ofi; pml ^ucx; mtl ^ofi; osc ^ucx).
SKIP_LIBS='^(liboshmem|libfabric|libucp|libucs|libuct|libucm|libibverbs|librdmacm|libpsm_infinipath|libpsm2|libefa|libinfinipath)\.so'
skipped=()
for c in "$OMPI_COMPONENTS"/mca_*.so; do
  if ldd "$c" | awk '{print $1}' | grep -Eq "$SKIP_LIBS"; then
    skipped+=("$(basename "$c" .so)")
  else
    cp "$c" "$B/lib/openmpi/"
  fi
done
PMIX_LIB=$(readlink -f "$(ldd "$OMPI_COMPONENTS/mca_pmix_ext3x.so" | awk '$1 == "libpmix.so.2" {print $3}')")
[ -f "$PMIX_LIB" ] || { echo "bundle.sh: cannot find libpmix.so.2 (Open MPI's PMIx); reinstall openmpi-bin" >&2; exit 1; }
PMIX_DIR=$(dirname "$PMIX_LIB")
cp "$PMIX_DIR"/pmix/pmix_mca_*.so "$B/lib/pmix/"
cp "$PMIX_DIR"/../share/pmix/help-*.txt "$B/share/pmix/"

cat > "$B/etc/openmpi-mca-params.conf" <<'EOF'
# Open MPI 4.1.4 in an internvl bundle (scripts/bundle.sh). The UCX, OFI, verbs and PSM
# components are not in the bundle (Debian's configuration turns them off as well): MPI runs
# over shared memory (vader) inside a node and TCP between nodes.
btl_base_warn_component_unused = 0
EOF
cat > "$B/etc/openmpi-default-hostfile" <<'EOF'
# Open MPI's default hostfile (empty: mpirun uses the local node, or the Slurm allocation).
EOF

# ---- 3. the libraries ----------------------------------------------------------------------------
# What the loader resolves on this machine for every ELF file of the bundle (ldd walks DT_NEEDED
# recursively). glibc's own libraries and the CUDA driver come from the target; the toolkit's
# libraries too, unless --with-cuda-libs.
GLIBC='^(ld-linux-x86-64\.so\.2|linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libmvec\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libresolv\.so\.2|libutil\.so\.1|libanl\.so\.1|libBrokenLocale\.so\.1|libthread_db\.so\.1|libc_malloc_debug\.so\.0|libnss_[a-z]*\.so\.2)$'
DRIVER='^(libcuda\.so\.1|libnvidia-.*)$'
declare -A FROM=()
toolkit=()
collect() { # collect ELF: records NAME -> PATH of everything ELF needs
  local name arrow path rest
  while read -r name arrow path rest; do
    [ "$arrow" = "=>" ] || continue
    [[ $name =~ $GLIBC || $name =~ $DRIVER ]] && continue
    if [ "$path" = "not" ]; then
      echo "bundle.sh: $1 needs $name, which this machine cannot find; install the package" \
           "that has it (scripts/install-deps.sh)" >&2
      exit 1
    fi
    if [ -n "$CUDA_DIR" ] && [[ $(readlink -f "$path") == "$CUDA_DIR"/* ]] && [ "$WITH_CUDA_LIBS" = 0 ]; then
      [[ " ${toolkit[*]} " == *" $name "* ]] || toolkit+=("$name")
      continue
    fi
    [ -n "${FROM[$name]:-}" ] || FROM[$name]=$path
  done < <(ldd "$1")
}
for f in "$B/libexec/internvl" "$B/bin/orterun" "$B/bin/orted" "$B"/lib/*.so "$B"/lib/openmpi/*.so "$B"/lib/pmix/*.so; do
  collect "$f"
done
for name in "${!FROM[@]}"; do
  cp -L "${FROM[$name]}" "$B/lib/$name"
  chmod u+w "$B/lib/$name"
done

# ---- 4. RUNPATHs -------------------------------------------------------------------------------
CUDA_RUNPATH='$ORIGIN:/usr/local/cuda/lib64:/usr/local/cuda/lib'
is_elf() { [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }
for f in "$B"/bin/* "$B"/libexec/*; do is_elf "$f" && patchelf --set-rpath '$ORIGIN/../lib' "$f"; done
for f in "$B"/lib/*.so*; do
  case "$(basename "$f")" in
    libivl_cuda.so|libivl_nccl.so) patchelf --set-rpath "$CUDA_RUNPATH" "$f" ;;
    *) patchelf --set-rpath '$ORIGIN' "$f" ;;
  esac
done
for f in "$B"/lib/openmpi/*.so "$B"/lib/pmix/*.so; do patchelf --set-rpath '$ORIGIN/..' "$f"; done

# Every DT_NEEDED of every ELF file must now be in lib/ or allowed from the target; this does not
# depend on what this machine has installed (fresh-debian-check.sh --bundle runs ldd too).
missing=0
while IFS= read -r -d '' f; do
  is_elf "$f" || continue
  for n in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [[ $n =~ $GLIBC || $n =~ $DRIVER || -e $B/lib/$n ]] && continue
    [[ " ${toolkit[*]} " == *" $n "* ]] && continue
    echo "bundle.sh: ${f#"$B"/} needs $n, which is not in the bundle" >&2; missing=1
  done
done < <(find "$B" -type f -print0)
[ "$missing" = 0 ] || exit 1

# ---- 5. the wrappers ---------------------------------------------------------------------------
cat > "$B/bin/internvl-env" <<'EOF'
#!/bin/sh
# internvl-env - the environment of a relocated internvl bundle (made by scripts/bundle.sh):
#   . /path/to/bundle/bin/internvl-env           (bash: sets it in this shell)
#   /path/to/bundle/bin/internvl-env CMD [ARG...]  (runs CMD with it)
# Open MPI and PMIx find their components, help texts and parameter files through these
# variables (Open MPI's documented relocation: OPAL_PREFIX and the OPAL_*DIR overrides), and
# bin/ goes first on PATH. Libraries need nothing: every ELF file has a $ORIGIN RUNPATH.
_ivl_sourced=0
if [ -n "${BASH_VERSION:-}" ]; then
  [ "${BASH_SOURCE:-$0}" != "$0" ] && _ivl_sourced=1
  _ivl_self=${BASH_SOURCE:-$0}
elif [ -n "${ZSH_VERSION:-}" ]; then
  case ${ZSH_EVAL_CONTEXT:-} in *:file*) _ivl_sourced=1 ;; esac
  _ivl_self=$0
else
  _ivl_self=$0
fi
case $(basename -- "$_ivl_self") in
  internvl-env) ;;
  *) echo "internvl-env: source it from bash or zsh, or run it: internvl-env CMD [ARG...]" >&2
     return 2 2>/dev/null || exit 2 ;;
esac
IVL_BUNDLE=$(cd "$(dirname -- "$(readlink -f -- "$_ivl_self")")/.." && pwd -P)
export IVL_BUNDLE
export OPAL_PREFIX="$IVL_BUNDLE" OPAL_EXEC_PREFIX="$IVL_BUNDLE" \
       OPAL_BINDIR="$IVL_BUNDLE/bin" OPAL_SBINDIR="$IVL_BUNDLE/bin" \
       OPAL_LIBEXECDIR="$IVL_BUNDLE/libexec" OPAL_LIBDIR="$IVL_BUNDLE/lib" \
       OPAL_PKGLIBDIR="$IVL_BUNDLE/lib/openmpi" OPAL_DATAROOTDIR="$IVL_BUNDLE/share" \
       OPAL_DATADIR="$IVL_BUNDLE/share" OPAL_PKGDATADIR="$IVL_BUNDLE/share/openmpi" \
       OPAL_SYSCONFDIR="$IVL_BUNDLE/etc"
export PMIX_PREFIX="$IVL_BUNDLE" PMIX_LIBDIR="$IVL_BUNDLE/lib" \
       PMIX_PKGLIBDIR="$IVL_BUNDLE/lib/pmix" PMIX_DATAROOTDIR="$IVL_BUNDLE/share" \
       PMIX_DATADIR="$IVL_BUNDLE/share" PMIX_PKGDATADIR="$IVL_BUNDLE/share/pmix" \
       PMIX_SYSCONFDIR="$IVL_BUNDLE/etc" PMIX_MCA_mca_base_component_path="$IVL_BUNDLE/lib/pmix"
case ":$PATH:" in *":$IVL_BUNDLE/bin:"*) ;; *) PATH="$IVL_BUNDLE/bin:$PATH" ;; esac
export PATH
# Daemons on other nodes (started over ssh, or srun inside a Slurm allocation) go through
# bin/internvl-orted, which sets this environment there too (the bundle must be at the same
# path on every node, as any Open MPI installation must).
[ -n "${OMPI_MCA_orte_launch_agent:-}" ] || export OMPI_MCA_orte_launch_agent="$IVL_BUNDLE/bin/internvl-orted"
# Open MPI's rsh launcher refuses to start when neither ssh nor rsh exists, even for ranks on
# this node only (one rank starts it too, through orted); the isolated launcher runs one node.
if [ -z "${OMPI_MCA_plm:-}${OMPI_MCA_plm_rsh_agent:-}${SLURM_JOB_ID:-}" ] &&
   ! command -v ssh >/dev/null 2>&1 && ! command -v rsh >/dev/null 2>&1; then
  export OMPI_MCA_plm=isolated
fi
unset _ivl_self
if [ "$_ivl_sourced" = 0 ]; then
  unset _ivl_sourced
  [ $# -gt 0 ] || { echo "usage: internvl-env CMD [ARG...]   (or source it)" >&2; exit 2; }
  exec "$@"
fi
unset _ivl_sourced
EOF
cat > "$B/bin/internvl" <<'EOF'
#!/bin/sh
# internvl (bundle): the engine's executable, libexec/internvl, with bin/internvl-env's paths.
d=$(dirname -- "$(readlink -f -- "$0")")
exec "$d/internvl-env" "$d/../libexec/internvl" "$@"
EOF
cat > "$B/bin/mpirun" <<'EOF'
#!/bin/sh
# mpirun (bundle): Open MPI's orterun with bin/internvl-env's paths, which the ranks inherit.
d=$(dirname -- "$(readlink -f -- "$0")")
exec "$d/internvl-env" "$d/orterun" "$@"
EOF
cat > "$B/bin/internvl-orted" <<'EOF'
#!/bin/sh
# internvl-orted (bundle): Open MPI's orted with bin/internvl-env's paths, for daemons that
# mpirun starts on other nodes (its orte_launch_agent, set by bin/internvl-env).
d=$(dirname -- "$(readlink -f -- "$0")")
exec "$d/internvl-env" "$d/orted" "$@"
EOF
chmod 755 "$B/bin/internvl-env" "$B/bin/internvl" "$B/bin/mpirun" "$B/bin/internvl-orted"

{
  echo "internvl bundle, made by scripts/bundle.sh from $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?')"
  echo "on $(. /etc/os-release && echo "$PRETTY_NAME"), $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "  $NAME/bin/internvl info model.h5"
  echo "  $NAME/bin/mpirun -np 4 $NAME/bin/internvl caption --model model.h5 --tp 2 --pp 2 ..."
  echo "(README.md of the repository, \"On a cluster without root\")"
  echo
  echo "Needs glibc >= $(find "$B" -type f -exec sh -c 'objdump -T "$1" 2>/dev/null' _ {} \; |
        grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 | sed 's/GLIBC_//') and, for --device cuda,"
  if [ "$WITH_CUDA_LIBS" = 1 ]; then
    echo "an NVIDIA driver for CUDA ${CUDA_DIR##*cuda-} (the toolkit's libraries are in lib/)."
  elif [ -n "$CUDA_DIR" ]; then
    echo "the CUDA ${CUDA_DIR##*cuda-} toolkit's ${toolkit[*]} in /usr/local/cuda/lib64,"
    echo "/usr/local/cuda/lib, the loader's path or LD_LIBRARY_PATH (or a bundle made --with-cuda-libs)."
  else
    echo "nothing (this bundle is CPU-only)."
  fi
} > "$B/README.txt"

# ---- 6. the archive ---------------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
tar -C "$STAGE" --owner=0 --group=0 -cf - "$NAME" | "${COMPRESS[@]}" > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "== bundle: $(find "$B" -type f | wc -l) files, $(find "$B/lib" -maxdepth 1 -name '*.so*' | wc -l) libraries in lib/," \
     "$(du -sm "$B" | cut -f1) MiB unpacked"
[ "${#skipped[@]}" -eq 0 ] || echo "== bundle: left out Open MPI components: ${skipped[*]}"
if [ -n "$CUDA_DIR" ] && [ "$WITH_CUDA_LIBS" = 0 ]; then
  echo "== bundle: from the target's CUDA toolkit (not bundled): ${toolkit[*]}"
fi
echo "== bundle: $OUT: $(stat -c %s "$OUT" | awk '{printf "%.1f MiB (%d bytes)", $1 / 1048576, $1}')," \
     "$(( $(date +%s) - T0 )) s"
