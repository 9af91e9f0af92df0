#!/usr/bin/env bash
# The demo: build an image with stargzfs's own eStargz writer into a local OCI layout,
# then look inside it without unpacking anything.
set -euo pipefail
cd "$(dirname "$0")/.."
work=build/demo
mkdir -p "$work"
rm -rf "$work/root"
img="oci:$work/image:demo"
sgz() { echo; echo "\$ stargzfs $*"; node dist/src/cli/main.js --root "$work/root" "$@"; }

info=$(node dist/scripts/make-demo-image.js "$work/image")
want=$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).bigSha256)' "$info")
echo "built $img with stargzfs's eStargz writer: $info"

sgz inspect "$img"
sgz ls -l "$img" /
sgz ls -l -R "$img" /usr /var /bin
sgz stat "$img" /opt/tool
sgz cat "$img" /etc/os-release /etc/motd
echo; echo "\$ stargzfs cat $img /usr/share/doc/demo/big.txt | sha256sum"
got=$(node dist/src/cli/main.js --root "$work/root" cat "$img" /usr/share/doc/demo/big.txt | sha256sum | cut -d' ' -f1)
echo "$got (expected $want)"
[ "$got" = "$want" ] || { echo "demo: big.txt read back wrong" >&2; exit 1; }
sgz ls -l --layer 1 --overlay trusted "$img" /usr/share/doc/demo /var/cache/app
sgz stat --layer 1 --overlay trusted "$img" /var/cache/app
sgz cache du
echo
echo "The demo image is in $work/image; its index is in $work/root/meta.db, its verified chunks in $work/root/chunks."
echo "The same commands take registry references (registry/repo:tag); lazy FUSE mounts come with the mount issue."
