#!/usr/bin/env bash
# The CLI as a few ES modules (dist/bundle/), run by the shell launcher beside them
# (dist/bundle/stargzfs): a process starts by reading and compiling them instead of
# resolving some 500 module files, most of a command's start-up. The
# entry (stargzfs.mjs) is small: `mount --daemon` starts its server from it without
# loading the CLI (src/cli/bin.ts); the rest is a chunk loaded on demand. Native addons
# and packages that load files of their own at run time stay external. node:http2 is
# loaded only if used (src/http/lazy-http2.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf dist/bundle
npx esbuild dist/src/cli/bin.js --bundle --splitting --platform=node --format=esm --target=node20 \
  --outdir=dist/bundle --entry-names=stargzfs --chunk-names='chunks/[name]-[hash]' --out-extension:.js=.mjs \
  --log-level=warning \
  --external:better-sqlite3 --external:zstd-napi --external:pino-pretty \
  --alias:node:http2=./dist/src/http/lazy-http2.js \
  --banner:js="import { createRequire as __stargzfsRequire } from 'node:module'; const require = __stargzfsRequire(import.meta.url);"
# The TOC import's worker thread (src/toc/import-thread.ts finds it beside the entry).
npx esbuild dist/src/toc/import-worker.js --bundle --platform=node --format=esm --target=node20 \
  --outfile=dist/bundle/import-worker.mjs --log-level=warning \
  --external:better-sqlite3 --external:zstd-napi --external:pino-pretty \
  --banner:js="import { createRequire as __stargzfsRequire } from 'node:module'; const require = __stargzfsRequire(import.meta.url);"
# containerd's snapshots API, loaded at run time by src/snapshotter/grpc-server.ts (../proto from a chunk).
cp -r src/snapshotter/proto dist/bundle/proto
chmod +x dist/bundle/stargzfs.mjs
# The executable people run: a shell launcher in front of the bundle (src/cli/stargzfs.sh).
install -m 0755 src/cli/stargzfs.sh dist/bundle/stargzfs
