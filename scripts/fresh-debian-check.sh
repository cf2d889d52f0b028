#!/usr/bin/env bash
# fresh-debian-check.sh - runs the README's set-up command in a fresh, minimal Debian 12 root,
# so that a set-up step that only works on the development machines fails here.
#
#   scripts/fresh-debian-check.sh [--tests] [--no-cuda] [--keep]
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
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
MODE=demo; WITH_CUDA=auto; KEEP=0
for a in "$@"; do
  case "$a" in
    --tests) MODE=tests ;;
    --no-cuda) WITH_CUDA=0 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
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

mkdir -p "$CACHE"
if [ ! -f "$BASE_TAR" ]; then
  step "building the cached minimal Debian 12 root (debootstrap minbase + $BASE_PKGS)"
  timed "debootstrap + base packages" make_base "$ROOT"
  rm -rf --one-file-system "$ROOT"; mkdir -p "$ROOT"
else
  step "using the cached root $BASE_TAR"
fi
timed "unpack a pristine root" tar -C "$ROOT" -xf "$BASE_TAR"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
chroot "$ROOT" dpkg-query -W -f='${Package}\n' | sort > "$ROOT/.pkgs-before"
step "root: $(chroot "$ROOT" cat /etc/debian_version), $(wc -l < "$ROOT/.pkgs-before") packages," \
     "$(chroot "$ROOT" cmake --version | head -1)"

mnt proc "$ROOT/proc" -t proc
mnt sysfs "$ROOT/sys" -t sysfs
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

timed "git clone of HEAD ($(git rev-parse --short HEAD))" \
  git clone -q --no-local --no-hardlinks "$REPO" "$ROOT/root/internvl"

if [ "$MODE" = demo ]; then
  CMD='scripts/install-deps.sh && scripts/demo.sh'
else
  CMD='scripts/install-deps.sh --tests && IVL_TEST_QUICK=1 scripts/test.sh'
fi
step "running the README command in the fresh root: $CMD"
rc=0
timed "README command ($MODE)" chroot "$ROOT" env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  bash -c "cd /root/internvl && $CMD" > >(sed -u 's/^/  | /') 2>&1 || rc=$?
sleep 0.2   # let the prefixing sed drain

chroot "$ROOT" dpkg-query -W -f='${Package}\n' | sort > "$ROOT/.pkgs-after"
added=$(comm -13 "$ROOT/.pkgs-before" "$ROOT/.pkgs-after")
echo "== fresh-debian-check: the README command installed $(echo "$added" | grep -c . || true) packages:"
echo "$added" | tr '\n' ' ' | fold -s -w 100 | sed 's/^/   /'; echo
echo "== fresh-debian-check: timings"
printf '   %s\n' "${times[@]}"
if [ "$rc" = 0 ]; then
  echo "== fresh-debian-check: PASS ($MODE, Debian $(chroot "$ROOT" cat /etc/debian_version), $CUDA_NOTE), $(( $(date +%s) - T0 )) s"
else
  echo "== fresh-debian-check: FAIL ($MODE, exit $rc, $CUDA_NOTE)" >&2
fi
exit "$rc"
