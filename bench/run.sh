#!/usr/bin/env bash
# Whole-system benchmarks: builds the release binary and the driver, runs
# them against real tmux (private sockets) with the built-in agent as a
# stamping fake peer, prints the table and writes bench/results/
# (table.md, results.json, latency samples, latency-cdf.svg; --quick:
# bench/results/quick/).
#
#   bench/run.sh            # full run (~10 min on 2 cores)
#   bench/run.sh --quick    # smaller counts (~4 min)
#   bench/run.sh --only latency,burst,roundtrip,routeload,cold,storm,idle,wait,scale,multihost
#   bench/run.sh --criterion  # also the in-process criterion benches
set -euo pipefail
cd "$(dirname "$0")/.."

args=() criterion= out=bench/results prev= only= quick=
for a in "$@"; do
  if [[ $a == --criterion ]]; then criterion=1; else args+=("$a"); fi
  # A quick or partial run does not overwrite the committed full-run results.
  if [[ $a == --quick ]]; then out=bench/results/quick quick=1; fi
  if [[ $a == --only && $out == bench/results ]]; then out=bench/results/partial; fi
  if [[ $prev == --only ]]; then only=$a; fi
  prev=$a
done
# multihost is this script's section (a cargo test), the rest the driver's:
# run the driver only when a section of its own is asked for.
run_driver=1 run_multihost=1
if [[ -n $only ]]; then
  [[ ,$only, == *,multihost,* ]] || run_multihost=
  rest=$(tr ',' '\n' <<<"$only" | grep -vx multihost | paste -sd, || true)
  [[ -n $rest ]] || run_driver=
fi

# inotifywait (package inotify-tools) drives the naive baseline; dd the
# concurrent writer of the roundtrip and routeload sections.
for tool in tmux inotifywait jq python3 dd; do
  if ! command -v "$tool" >/dev/null; then
    pkg=$tool
    [[ $tool == inotifywait ]] && pkg=inotify-tools
    [[ $tool == dd ]] && pkg=coreutils
    echo "bench/run.sh: $tool is missing: install the $pkg package (apt-get install -y $pkg), then run again" >&2
    exit 1
  fi
done

mkdir -p "$out"
list=$(mktemp /tmp/sysbench-cleanup.XXXXXX)

# Stops what the driver started if it dies without cleaning up: only the
# ids and sockets it listed, never processes by name.
cleanup() {
  local kind val
  [[ -s $list ]] && while read -r kind val; do
    case $kind in
      pid)  kill "$val" 2>/dev/null || true ;;
      pgid) kill -- "-$val" 2>/dev/null || true ;;
      sock) [[ -S $val ]] && { tmux -S "$val" kill-server 2>/dev/null || true; } ;;
      dir)  [[ $val == */psb-* ]] && rm -rf -- "$val" ;;
    esac
  done < "$list"
  rm -f -- "$list"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n $run_driver ]]; then
  cargo build --release --quiet --bin peerspool --example sysbench
  # Bounded in time; --foreground keeps the driver in this process group so
  # that Ctrl-C reaches it (it then stops what it started and exits).
  timeout --foreground --signal=TERM --kill-after=30 1200 \
    target/release/examples/sysbench --bin target/release/peerspool --out "$out" \
    --cleanup-list "$list" --baseline bench/baseline.sh "${args[@]}"
  python3 bench/plot.py "$out"
fi
if [[ -n $criterion ]]; then
  cargo bench --bench inproc
fi
# Cross-host round trip (issue 19): two daemons bridged by a real
# nats-server on loopback, send --wait to b@h2 beside a local peer; skipped
# without nats-server. The test prints p50/p99 of each (--quick: 30 rounds),
# then an idle daemon's CPU with its bridge connected beside one without.
if [[ -z $run_multihost ]]; then
  :
elif command -v nats-server >/dev/null 2>&1; then
  # Built first, outside the time bound: a cold release build alone can take it.
  cargo test --release --quiet --test multihost --no-run
  ROUNDS=${ROUNDS:-$([[ -n $quick ]] && echo 30 || echo 50)} IDLE_SECS=${IDLE_SECS:-$([[ -n $quick ]] && echo 10 || echo 60)} \
    timeout 900 cargo test --release --quiet --test multihost _figures -- --ignored --nocapture --test-threads 1 2>&1 | grep -oE '(round trip|idle daemon) .*' | tee "$out/multihost.txt"
else
  echo "bench: nats-server not found (apt-get install nats-server): cross-host round trip skipped"
fi
