#!/usr/bin/env bash
# What `make bench` needs beyond `make setup`: debootstrap builds the start-up
# benchmark's Debian images from the configured apt mirror. Quiet when it is there.
set -euo pipefail
dpkg-query -W -f='${Status}' debootstrap 2>/dev/null | grep -q 'install ok installed' && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-bench-deps: debootstrap is missing; run as root (or: sudo apt-get install debootstrap)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends debootstrap || { apt-get -o DPkg::Lock::Timeout=600 update && apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends debootstrap; }
