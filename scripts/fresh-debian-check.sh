#!/usr/bin/env bash
# fresh-debian-check.sh - runs the README's set-up command in a fresh, minimal Debian 12 root,
# so that a set-up step that only works on the development machines fails here.
#
#   scripts/fresh-debian-check.sh [--tests | --bundle] [--no-cuda] [--keep]
#
# What it does, as root:
#   1. a minimal Debian 12 root: `debootstrap --variant=minbase bookworm` from the Debian
#      package registry, plus what a developer's Debian has before the README (build-essential
#      cmake git ca-certificates file python3). It is built once and cached as a tarball in
#      $IVL_FRESH_CACHE (default ~/.cache/internvl/fresh-debian); every run unpacks a pristine
#      copy, so nothing of an earlier run leaks into the next;
#   2. the host's CUDA toolkit, when /usr/local/cuda exists, bind-mounted read-only at the same
#      place (as NVIDIA's installer leaves it: the toolkit folder and the /usr/local/cuda link,
#      nothing else: no LIBRARY_PATH, no CUDA_HOME, no ld.so.conf entry); --no-cuda leaves it out;
#   3. `git clone` of the committed HEAD of this repository (uncommitted changes are NOT checked);
#   4. the README's demo command, `scripts/install-deps.sh && scripts/demo.sh`, in a clean
#      environment (env -i: PATH of a plain root shell, no pyenv, no CUDA variables), or with
#      --tests the README's test command (`IVL_TEST_QUICK=1`, the first ctest pass only).
# It prints the packages the command installed and how long each step took. Exit status: that
# of the README command (0 = the set-up works on a genuine Debian 12).
#
# --bundle checks the relocatable bundle instead (README "On a cluster without root"): on this
# host, scripts/bundle.sh build-bundle/internvl-bundle.tar.xz (from the working tree, built
# incrementally in build-bundle/) and the demo checkpoint folder (tests/gen/make_demo.sh, host
# python); in the fresh root, which has none of the engine's packages and never sees the build
# tree, with env -i (no LD_LIBRARY_PATH): unpack the bundle, run ldd on every ELF file in it and
# fail when a library resolves outside the bundle (allowed: glibc's own libraries; for the CUDA
# modules the toolkit's libcudart/libcublasLt/libnccl, from the bind-mounted toolkit or "not
# found" with --no-cuda), then the demo from the bundle: convert, info, chat, `mpirun -np 4
# caption --tp 2 --pp 2` of docs/samples, --device cuda (which must find the CUDA module
# beside the executable and, with the toolkit, load it; no GPU here gives exit 3), and the
# caption job again on two emulated nodes (a stand-in for ssh gives the second node its own
# hostname and an empty environment) with the same captions. No package is installed in the
# root. IVL_BUNDLE_TAR=FILE checks that bundle instead of building one, e.g.
#   scripts/bundle.sh --with-cuda-libs build-bundle/ivl-cuda.tar.gz &&
#   IVL_BUNDLE_TAR=build-bundle/ivl-cuda.tar.gz scripts/fresh-debian-check.sh --bundle --no-cuda
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
MODE=demo; WITH_CUDA=auto; KEEP=0
for a in "$@"; do
  case "$a" in
    --tests) MODE=tests ;;
    --bundle) MODE=bundle ;;
    --no-cuda) WITH_CUDA=0 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "fresh-debian-check.sh: unknown option $a (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "fresh-debian-check.sh: needs root (debootstrap, chroot, mount)" >&2; exit 2; }

MIRROR=${IVL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${IVL_FRESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/internvl/fresh-debian}
BASE_PKGS="build-essential cmake git ca-certificates file python3"
BASE_TAR=$CACHE/bookworm-minbase-$(echo "$BASE_PKGS" | md5sum | cut -c1-8).tar
T0=$(date +%s)
step() { local now; now=$(date +%s); echo "== fresh-debian-check [+$(( now - T0 )) s] $*"; }
times=()
timed() { # timed LABEL cmd...
  local label=$1 t rc=0; shift; t=$(date +%s)
  "$@" || rc=$?
  times+=("$(printf '%-34s %5d s%s' "$label" "$(( $(date +%s) - t ))" "$([ $rc = 0 ] || echo "  (exit $rc)")")")
  return $rc
}

if ! command -v debootstrap >/dev/null; then
  step "installing debootstrap on the host"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q \
    --no-install-recommends debootstrap >/dev/null
fi

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/ivl-fresh-root.XXXXXX")
MOUNTS=()
cleanup() {
  local i
  for (( i=${#MOUNTS[@]}-1; i>=0; i-- )); do umount -R "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" || true; done
  if findmnt -rn -o TARGET | grep -q "^$ROOT"; then
    echo "fresh-debian-check.sh: something is still mounted under $ROOT; not removing it" >&2
  elif [ "$KEEP" = 1 ]; then
    echo "fresh-debian-check.sh: root kept at $ROOT"
  else
    rm -rf --one-file-system "$ROOT"
  fi
}
trap cleanup EXIT
mnt() { # mnt SRC DST [opts]: bind (or fs type) mount, remembered for cleanup
  mkdir -p "$2"; mount "${@:3}" "$1" "$2"; MOUNTS+=("$2")
}

make_base() {
  local b=$1
  debootstrap --variant=minbase bookworm "$b" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
    { tail -20 "$CACHE/debootstrap.log" >&2; return 1; }
  # the sources a Debian 12 installation has (the release, its updates, security)
  rm -f "$b/etc/apt/sources.list"
  cat > "$b/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${IVL_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cp /etc/resolv.conf "$b/etc/resolv.conf"
  mount -t proc proc "$b/proc"
  chroot "$b" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive bash -c \
    "apt-get -q update && apt-get install -y -q --no-install-recommends $BASE_PKGS && apt-get clean" \
    >"$CACHE/base-packages.log" 2>&1 || { umount "$b/proc"; tail -20 "$CACHE/base-packages.log" >&2; return 1; }
  umount "$b/proc"
  tar -C "$b" -cf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
}

# The --bundle check, run inside the fresh root from /root/internvl (bundle tarball, demo-hf/,
# samples/ beside it).
write_bundle_check() {
  cat <<'CHECK'
set -euo pipefail
fail() { echo "bundle-check: FAIL: $*" >&2; exit 1; }
echo "-- the root's own libraries (ldconfig -p), no LD_LIBRARY_PATH (${LD_LIBRARY_PATH:-unset}):"
has=(); hasnt=()
for l in libmpi.so.40 libopen-pal.so.40 libpmix.so.2 libhdf5_serial.so.103 libopenblas.so.0 \
         libprotobuf-c.so.1 libsentencepiece.so.0 libcjson.so.1 libjpeg.so.62 libpng16.so.16 \
         libcublasLt.so.13 libarchive.so.13 libgomp.so.1; do
  if ldconfig -p | grep -q "^[[:space:]]*$l "; then has+=("$l"); else hasnt+=("$l"); fi
done
echo "   has none of: ${hasnt[*]}"
echo "   has (from cmake/gcc; the bundle's copies must win, ldd below): ${has[*]:-none}"
for l in "${has[@]}"; do
  case $l in libarchive.so.13|libgomp.so.1) ;; *) fail "the root has $l: not a fair check" ;; esac
done
TAR=$1 NAME=$2
tar xf "$TAR"
B=$(cd "$NAME" && pwd -P)
echo "-- ldd on every ELF file of the bundle ($(du -sm "$B" | cut -f1) MiB unpacked)"
GLIBC='^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libmvec\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libresolv\.so\.2|libutil\.so\.1|libanl\.so\.1)$'
TOOLKIT='^(libcudart\.so\.[0-9]+|libcublasLt\.so\.[0-9]+|libcublas\.so\.[0-9]+|libnccl\.so\.2)$'
n_elf=0; n_res=0; bad=0; toolkit_seen=
while IFS= read -r -d '' f; do
  [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
  n_elf=$((n_elf + 1))
  case "$f" in */lib/libivl_cuda.so|*/lib/libivl_nccl.so) cuda_mod=1 ;; *) cuda_mod=0 ;; esac
  out=$(ldd "$f" 2>&1) || { echo "   $f: ldd failed: $out"; bad=1; continue; }
  while read -r name arrow path rest; do
    [ "$arrow" = "=>" ] || continue
    n_res=$((n_res + 1))
    if [[ $name =~ $GLIBC ]]; then continue; fi
    real=$(readlink -f "$path" 2>/dev/null || true)
    if [ "$path" != not ] && [[ $real == "$B"/* ]]; then continue; fi
    if [ "$cuda_mod" = 1 ] && [[ $name =~ $TOOLKIT ]]; then
      if [ "$path" = not ] || [[ $path == /usr/local/cuda* ]]; then
        toolkit_seen="$toolkit_seen $name=>$path"; continue
      fi
    fi
    # The toolkit's libnccl needs libstdc++ and libgcc_s: a standalone ldd of the module finds
    # the system's, but in the process internvl has loaded the bundle's copies by then. Allowed
    # only when the module does not need them itself.
    if [ "$cuda_mod" = 1 ] && [[ $name =~ ^(libstdc\+\+\.so\.6|libgcc_s\.so\.1)$ ]] &&
       ! readelf -d "$f" | grep -q "(NEEDED).*\[$name\]"; then
      toolkit_seen="$toolkit_seen $name(for-the-toolkit)=>$path"; continue
    fi
    echo "   ${f#"$B"/}: $name => $path $rest (outside the bundle)"; bad=1
  done <<< "$out"
done < <(find "$B" -type f -print0)
[ "$bad" = 0 ] || fail "libraries resolved outside the bundle (above)"
echo "   $n_elf ELF files, $n_res resolutions: all inside the bundle or glibc's"
echo "   from the CUDA toolkit, for the CUDA modules:$(echo "${toolkit_seen:- none}" | tr ' ' '\n' | sort -u | tr '\n' ' ')"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
IVL=$NAME/bin/internvl
echo "== 1. internvl convert (from the bundle): HF folder -> one HDF5 model file"
$IVL convert --hf demo-hf --out demo.h5
$IVL info demo.h5
echo "== 2. internvl chat: one question about a bundled image"
$IVL chat --model demo.h5 --image samples/house.jpg --max-tiles 6 --max-new-tokens 32 "Describe the image."
echo "== 3. internvl caption on 4 MPI ranks (tp 2 x pp 2), the bundle's mpirun"
$NAME/bin/mpirun --allow-run-as-root --oversubscribe -np 4 -x OMP_NUM_THREADS=1 \
  -x OPENBLAS_NUM_THREADS=1 $IVL caption --model demo.h5 --tp 2 --pp 2 --input samples \
  --out captions --max-tiles 4 --max-new-tokens 24 --progress log
[ -f captions/samples-000000.done ] || fail "caption did not mark its output done"
echo "   $(wc -l < captions/samples-000000.jsonl) captions in captions/samples-000000.jsonl"
echo "== 4. --device cuda: the CUDA module beside the executable"
rc=0; msg=$($IVL chat --model demo.h5 --device cuda --image samples/house.jpg --max-new-tokens 4 x 2>&1) || rc=$?
echo "   exit $rc: $(echo "$msg" | grep -m1 -E 'error|CUDA' || echo "$msg" | tail -1)"
if [ -d /usr/local/cuda ] || compgen -G "$B/lib/libcudart.so.*" >/dev/null; then
  # the module and the toolkit's libraries loaded; only the GPU is missing (or present: exit 0)
  [ "$rc" = 0 ] || { [ "$rc" = 3 ] && [[ $msg == *"no CUDA device"* ]]; } ||
    fail "--device cuda did not load the CUDA module with the toolkit's libraries"
else
  [ "$rc" = 3 ] && [[ $msg == *"$B/"*libivl_cuda.so* || $msg == *libcudart* || $msg == *libcublasLt* ]] ||
    fail "--device cuda without a toolkit: expected the module's missing-library message"
fi
echo "== 5. the same caption job on two emulated nodes ($(hostname) + nodeb, 2 ranks each)"
# A stand-in for ssh: the "remote" node gets its own hostname (a UTS namespace; Open MPI then
# uses TCP between the nodes) and an empty environment, so its orted and ranks see only what
# mpirun's remote command and the bundle's bin/internvl-orted set up.
cat > fake-ssh <<'EOF'
#!/bin/bash
host=$1; shift
exec unshare --uts bash -c 'hostname "$0"; exec env -i HOME=/root PATH=/usr/bin:/bin bash -c "$1"' "$host" "$*"
EOF
chmod +x fake-ssh
OMPI_MCA_plm_rsh_agent=$PWD/fake-ssh $NAME/bin/mpirun --allow-run-as-root --oversubscribe \
  --host "$(hostname):2,nodeb:2" -np 4 -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 \
  $IVL caption --model demo.h5 --tp 2 --pp 2 --input samples --out captions-2nodes \
  --max-tiles 4 --max-new-tokens 24 --progress log
strip_timings() { sed 's/,"timings":{[^}]*}//' "$1" | sort; }
diff <(strip_timings captions/samples-000000.jsonl) <(strip_timings captions-2nodes/samples-000000.jsonl) ||
  fail "two nodes gave other captions than one node"
echo "   the same $(wc -l < captions-2nodes/samples-000000.jsonl) captions as on one node"
echo "== bundle-check: PASS"
CHECK
}

mkdir -p "$CACHE"
if [ ! -f "$BASE_TAR" ]; then
  step "building the cached minimal Debian 12 root (debootstrap minbase + $BASE_PKGS)"
  timed "debootstrap + base packages" make_base "$ROOT"
  rm -rf --one-file-system "$ROOT"; mkdir -p "$ROOT"
else
  step "using the cached root $BASE_TAR"
fi
if [ "$MODE" = bundle ]; then
  # Made on this host: what a user builds on a Debian machine and carries to the cluster.
  DEMO_HF=$REPO/build-bundle/demo-hf
  if [ -n "${IVL_BUNDLE_TAR:-}" ]; then
    BUNDLE_TAR=$(readlink -f "$IVL_BUNDLE_TAR")
    [ -f "$BUNDLE_TAR" ] || { echo "fresh-debian-check.sh: IVL_BUNDLE_TAR=$IVL_BUNDLE_TAR is not a file; make it with scripts/bundle.sh" >&2; exit 2; }
    step "checking the given bundle $BUNDLE_TAR ($(du -m --apparent-size "$BUNDLE_TAR" | cut -f1) MiB)"
  else
    BUNDLE_TAR=$REPO/build-bundle/internvl-bundle.tar.xz
    step "building the bundle on the host: scripts/bundle.sh $BUNDLE_TAR"
    timed "scripts/bundle.sh (host)" scripts/bundle.sh "$BUNDLE_TAR" > >(sed -u 's/^/  | /') 2>&1
    sleep 0.2
  fi
  BUNDLE_NAME=$(basename "$BUNDLE_TAR"); BUNDLE_NAME=${BUNDLE_NAME%.tar.*}
  timed "demo checkpoint folder (host)" tests/gen/make_demo.sh "$DEMO_HF" >/dev/null
fi
timed "unpack a pristine root" tar -C "$ROOT" -xf "$BASE_TAR"
chmod 755 "$ROOT"   # as / is on a real system (mktemp made it 0700: users like munge could not run /bin/sh)
# What an installed machine of this network has and a bare root lacks: its own name in
# /etc/hosts (slurmd and munged look it up) and, where the network inspects TLS, the egress
# CA the host trusts (npm and apt use them); the engine's set-up is still only the README's.
cp /etc/hosts "$ROOT/etc/hosts"
EXTRA_CA=""
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  chroot "$ROOT" update-ca-certificates >/dev/null 2>&1 || true
  EXTRA_CA="NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt"
fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
chroot "$ROOT" dpkg-query -W -f='${Package}\n' | sort > "$ROOT/.pkgs-before"
step "root: $(chroot "$ROOT" cat /etc/debian_version), $(wc -l < "$ROOT/.pkgs-before") packages," \
     "$(chroot "$ROOT" cmake --version | head -1)"

# What a booted system has and a bare chroot lacks. / is a mount point there (`ip netns exec`
# and `unshare --propagation` remount / with other propagation: EINVAL on a plain folder), so
# the root is bind-mounted onto itself first (private: nothing mounted inside reaches the host;
# everything below is unmounted with it); /proc, /sys with the cgroup hierarchy (slurmd 22.05
# refuses to start without a cgroup file system, even with no cgroup plugin configured), /dev,
# /dev/shm.
mnt "$ROOT" "$ROOT" --bind
mount --make-private "$ROOT"
mnt proc "$ROOT/proc" -t proc
mnt sysfs "$ROOT/sys" -t sysfs
if mountpoint -q /sys/fs/cgroup; then
  mount --rbind /sys/fs/cgroup "$ROOT/sys/fs/cgroup"
  mount --make-rslave "$ROOT/sys/fs/cgroup"
fi
mnt /dev "$ROOT/dev" --rbind
mount --make-rslave "$ROOT/dev"
mnt tmpfs "$ROOT/dev/shm" -t tmpfs

CUDA_NOTE="no CUDA toolkit"
if [ "$WITH_CUDA" != 0 ] && [ -e /usr/local/cuda/bin/nvcc ]; then
  # NVIDIA's layout: /usr/local/cuda-X.Y and the /usr/local/cuda link to it
  real=$(readlink -f /usr/local/cuda)
  mnt "$real" "$ROOT$real" --bind
  mount -o remount,bind,ro "$ROOT$real"
  [ "$real" = /usr/local/cuda ] || ln -sfn "$real" "$ROOT/usr/local/cuda"
  CUDA_NOTE="CUDA toolkit $real ($("$real/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
fi
step "bind-mounted: $CUDA_NOTE"

if [ "$MODE" = bundle ]; then
  mkdir -p "$ROOT/root/internvl"
  cp "$BUNDLE_TAR" "$ROOT/root/internvl/"
  cp -r "$DEMO_HF" "$ROOT/root/internvl/demo-hf"
  cp -r docs/samples "$ROOT/root/internvl/samples"
  write_bundle_check > "$ROOT/root/internvl/bundle-check.sh"
  CMD="bash bundle-check.sh $(basename "$BUNDLE_TAR") $BUNDLE_NAME"
  step "checking the bundle in the fresh root (nothing installed there)"
else
  timed "git clone of HEAD ($(git rev-parse --short HEAD))" \
    git clone -q --no-local --no-hardlinks "$REPO" "$ROOT/root/internvl"
  if [ "$MODE" = demo ]; then
    CMD='scripts/install-deps.sh && scripts/demo.sh'
  else
    CMD='scripts/install-deps.sh --tests && IVL_TEST_QUICK=1 scripts/test.sh'
  fi
  step "running the README command in the fresh root: $CMD"
fi
rc=0
LABEL="README command ($MODE)"; [ "$MODE" = bundle ] && LABEL="bundle check in the root"
timed "$LABEL" chroot "$ROOT" env -i HOME=/root LANG=C.UTF-8 TERM=dumb $EXTRA_CA \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  bash -c "cd /root/internvl && $CMD" > >(sed -u 's/^/  | /') 2>&1 || rc=$?
sleep 0.2   # let the prefixing sed drain

chroot "$ROOT" dpkg-query -W -f='${Package}\n' | sort > "$ROOT/.pkgs-after"
added=$(comm -13 "$ROOT/.pkgs-before" "$ROOT/.pkgs-after")
echo "== fresh-debian-check: the README command installed $(echo "$added" | grep -c . || true) packages:"
echo "$added" | tr '\n' ' ' | fold -s -w 100 | sed 's/^/   /'; echo
if [ "$MODE" = bundle ] && [ -n "$added" ] && [ "$rc" = 0 ]; then
  echo "fresh-debian-check.sh: the bundle check installed packages; it must run without any" >&2
  rc=1
fi
echo "== fresh-debian-check: timings"
printf '   %s\n' "${times[@]}"
if [ "$rc" = 0 ]; then
  echo "== fresh-debian-check: PASS ($MODE, Debian $(chroot "$ROOT" cat /etc/debian_version), $CUDA_NOTE), $(( $(date +%s) - T0 )) s"
else
  echo "== fresh-debian-check: FAIL ($MODE, exit $rc, $CUDA_NOTE)" >&2
fi
exit "$rc"
