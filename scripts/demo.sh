#!/usr/bin/env bash
# The demo, the main job on a fresh machine: start a local registry (Debian's
# docker-registry on a free loopback port), build an eStargz image with stargzfs's own
# writer and push it, mount it lazily with FUSE, look inside, show how little was
# fetched, unmount. Everything it starts is stopped on exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(pwd)/build/demo
umount -l "$work/mnt" 2>/dev/null || true
rm -rf "$work"
mkdir -p "$work/registry" "$work/mnt"
sgz() { echo; echo "\$ stargzfs $*"; node dist/bundle/stargzfs.mjs --root "$work/root" "$@"; }

registry_pid=
cleanup() {
  if mountpoint -q "$work/mnt" 2>/dev/null || ! stat "$work/mnt" >/dev/null 2>&1; then
    node dist/bundle/stargzfs.mjs unmount "$work/mnt" 2>/dev/null || umount -l "$work/mnt" 2>/dev/null || true
  fi
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/registry/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry/data
http:
  addr: "127.0.0.1:$port"
YAML
docker-registry serve "$work/registry/config.yml" 2>"$work/registry/log" &
registry_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
echo "a local registry (docker-registry, pid $registry_pid) is serving on 127.0.0.1:$port"

info=$(node dist/scripts/make-demo-image.js "$work/image")
manifest=$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).manifest)' "$info")
want=$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).bigSha256)' "$info")
ref="127.0.0.1:$port/demo/hello:v1"
node dist/scripts/push-layout.js "$work/image" "$manifest" "$ref"
echo "built an eStargz image with stargzfs's writer and pushed it as $ref"

sgz inspect "$ref"
# No background fetch, so what status reports is what the reads below needed.
sgz mount --daemon --no-background-fetch "$ref" "$work/mnt"
echo; echo "\$ ls -l $work/mnt $work/mnt/etc"
ls -l "$work/mnt" "$work/mnt/etc"
echo; echo "\$ cat $work/mnt/etc/os-release"
cat "$work/mnt/etc/os-release"
echo; echo "\$ $work/mnt/bin/hello   # (run with sh: the image has no busybox)"
sh "$work/mnt/bin/hello"
echo; echo "\$ head -c 120 $work/mnt/usr/share/doc/demo/big.txt"
head -c 120 "$work/mnt/usr/share/doc/demo/big.txt"; echo
sgz status "$work/mnt"
echo; echo "\$ sha256sum $work/mnt/usr/share/doc/demo/big.txt"
got=$(sha256sum "$work/mnt/usr/share/doc/demo/big.txt" | cut -d' ' -f1)
echo "$got (expected $want)"
[ "$got" = "$want" ] || { echo "demo: big.txt read back wrong" >&2; exit 1; }
sgz status "$work/mnt"
sgz unmount "$work/mnt"
echo
echo "Done: the image was mounted from the registry and only the chunks read were fetched (see the first status);"
echo "reading all of big.txt then fetched its remaining chunks. Its index is in $work/root/meta.db, its chunks in $work/root/chunks."
