#!/usr/bin/env bash
# Installs the Debian packages stargzfs needs to build, test and run, when missing.
# Idempotent and quiet when everything is there; apt-get update runs only if needed.
set -euo pipefail

packages=(
  g++ make python3 pkg-config   # node-gyp builds better-sqlite3 and zstd-napi from source (offline)
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
if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
