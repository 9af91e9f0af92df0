#!/usr/bin/env bash
# The side-by-side comparisons with the reference (containerd's stargz-store), when its
# kit has been set up on this machine (../shared/reference/setup.sh): steady state and
# cold start, each in one run beside the reference. Without the kit, says so and exits 0:
# `make bench` then has the local baselines only (bench/steady.bench.ts and the others).
# Output: bench/results/reference-{steady,cold}-DATE.txt, the scripts' own tables.
set -uo pipefail
cd "$(dirname "$0")/.."
kit=../shared/reference
if [ ! -x "$kit/compare-steady.sh" ] || [ ! -x /var/tmp/stargzfs-reference/bin/stargz-store ]; then
  echo "bench/reference.sh: the reference kit is not set up ($kit/setup.sh); skipped" >&2
  exit 0
fi
mkdir -p bench/results
day=$(date +%F)
REPS=${REPS:-3} "$kit/compare-steady.sh" | tee "bench/results/reference-steady-$day.txt"
"$kit/compare-cold.sh" | tee "bench/results/reference-cold-$day.txt"
"$kit/setup.sh" stop >/dev/null 2>&1 || true
