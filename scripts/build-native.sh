#!/usr/bin/env bash
# Builds the FUSE addon (native/) with npm's own node-gyp against the installed Node
# headers, offline: npm's configured nodedir, else the distribution's /usr.
set -euo pipefail
npm_dir=$(dirname "$(readlink -f "$(command -v npm)")")
gyp="$npm_dir/../node_modules/node-gyp/bin/node-gyp.js"
nodedir=$(npm config get nodedir 2>/dev/null || true)
if [ -z "$nodedir" ] || [ "$nodedir" = undefined ] || [ "$nodedir" = null ]; then
  nodedir=/usr
fi
if [ ! -e "$nodedir/include/node/node_api.h" ]; then
  echo "build-native: no Node headers under $nodedir/include/node (install the nodejs headers, or set npm's nodedir)" >&2
  exit 1
fi
exec node "$gyp" configure build --nodedir="$nodedir"
