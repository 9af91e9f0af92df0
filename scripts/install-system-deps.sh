#!/usr/bin/env bash
# Installs the Debian packages stargzfs needs to build, test and run, when missing.
# Idempotent and quiet when everything is there; apt-get update runs only if needed.
set -euo pipefail

packages=(
  g++ make python3 pkg-config   # node-gyp builds better-sqlite3 and zstd-napi from source (offline)
  docker-registry               # the CNCF distribution server the tests start on loopback
  curl                          # the baseline of the ranged-GET benchmark
  openssl                       # the token-auth tests make a signing certificate
  fuse3 libfuse3-dev            # the FUSE addon (native/) builds against libfuse3 and mounts with it
  containerd runc               # the snapshotter's e2e test runs containers through a real containerd
  stargz-snapshotter            # ctr-remote: the lazy pull (`i rpull`) the snapshotter test drives
  libc6-dev                     # a static test binary for those containers (cc -static)
  podman fuse-overlayfs         # the layer store's e2e test: podman 4.3 with stargzfs as its additional layer store
  catatonit slirp4netns         # podman's recommends (init, rootless networking), as a normal install has them
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Another process (unattended-upgrades, a second install) may hold the dpkg lock: wait for it.
# Packages may not start their services (docker-registry would listen on :5000): the
# tests start their own registries on free loopback ports and stop them.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=1
fi
trap 'if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
if ! apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"; then
  apt-get -o DPkg::Lock::Timeout=600 update
  apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
fi
