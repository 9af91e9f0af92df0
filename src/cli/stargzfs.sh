#!/bin/sh
# The executable (installed as `stargzfs`; scripts/bundle.sh puts it beside the bundle).
# Every command runs the bundled CLI, stargzfs.mjs. `mount … --daemon` is waited for
# here, in the shell: its parent only starts the server and waits for "ready", and doing
# that in a Node process put a second Node start-up (about a tenth of a second, a third
# of a cold mount) before the server's own.
#
# The server (src/cli/bin.ts, STARGZFS_DAEMON=sh) takes its output to its log file and
# tells, on fd 3, lines to show followed by one status line: `ready`, `exit N`, or
# `use-node` when it would rather the full CLI ran the daemon (arguments it does not
# read plainly). Anything it printed before that (a crash at start) arrives here too.
#
# A service on the mount's state root (`stargzfs serve`, src/service/) is handed any
# `mount` first, through native/serve_client.c: it answers with the same lines, and the
# mount is made in the service's process, without a Node start-up. Exit 75 from the
# client: no service there, and the mount runs on its own as without a service.
# Where the bundle is: through the symlink `make install` puts on the PATH, or here. The
# test is a builtin; `readlink` is a fork and an exec, a millisecond or two of every mount.
if [ -L "$0" ]; then
  self=$(readlink -f -- "$0" 2>/dev/null) || self=$0
else
  case $0 in
    /*) self=$0 ;;
    *) self=$PWD/$0 ;;
  esac
fi
main="${self%/*}/stargzfs.mjs"
node=${STARGZFS_NODE:-node}

daemon= mount=
for a in "$@"; do
  case $a in
    --daemon | --daemon=true) daemon=1 ;;
    mount) mount=1 ;;
    --) break ;;
  esac
done

said=
# A service on the mount's state root takes it (src/service/control.ts): no Node start-up.
if [ -n "$mount" ]; then
  client="${self%/*}/../../build/Release/stargzfs-serve-client"
  if [ -x "$client" ]; then
    said=$("$client" "$@" </dev/null) || said=
  fi
fi
if [ -z "$said" ]; then
  [ -n "$daemon" ] || exec "$node" "$main" "$@"
  said=$(STARGZFS_DAEMON=sh setsid "$node" "$main" "$@" 3>&1 2>&1 >/dev/null </dev/null &)
fi
status=${said##*"
"}
shown=${said%"$status"}
[ -n "$shown" ] && printf '%s' "$shown" >&2
case $status in
  ready) exit 0 ;;
  use-node) exec "$node" "$main" "$@" ;;
  "exit "[0-9]*) exit "${status#exit }" ;;
esac
# No status line: the server ended before it could say (killed, or it never started).
[ -n "$status" ] && printf '%s\n' "$status" >&2
echo "stargzfs: the mount's server ended before it served" >&2
exit 1
