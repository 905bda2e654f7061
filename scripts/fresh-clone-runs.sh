#!/usr/bin/env bash
# Proof of the README's promise: `npm ci && npm test` from a fresh clone passes, run after run, on
# a loaded machine. Clones the committed HEAD of this checkout N times (default 5) into a temporary
# folder, one after the other, each run with a busy process beside it (one core spinning, as
# another tenant of a CI machine would), and prints one line per run: its result and wall time.
# Usage: scripts/fresh-clone-runs.sh [N] [LOG_DIR]
set -uo pipefail
runs=${1:-5}
logs=${2:-$(mktemp -d /tmp/portcullis-fresh-runs-XXXXXX)}
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$logs"
echo "fresh-clone runs of $(git -C "$repo" rev-parse --short HEAD), logs in $logs"
failed=0
for i in $(seq 1 "$runs"); do
  work=$(mktemp -d /tmp/portcullis-fresh-XXXXXX)
  git clone -q "$repo" "$work/portcullis"
  node -e 'for (;;) {}' &
  hog=$!
  start=$(date +%s)
  ( cd "$work/portcullis" && npm ci && npm test ) > "$logs/run-$i.log" 2>&1
  rc=$?
  end=$(date +%s)
  kill "$hog" 2>/dev/null; wait "$hog" 2>/dev/null
  summary=$(grep -a '^tests: ' "$logs/run-$i.log" | tail -1)
  echo "run $i: exit $rc, $((end - start)) s (npm ci + npm test), ${summary:-no summary line}, load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  [ "$rc" -eq 0 ] || failed=$((failed + 1))
  rm -rf "$work"
done
echo "$failed of $runs runs failed"
[ "$failed" -eq 0 ]
