#!/usr/bin/env bash
# Runs every server against the same load generator on loopback and prints
# one line per measurement. Bounded: ~5 s per measurement.
#   CARGO_TARGET_DIR=/work/target-rtcmp cargo build --release && ./run.sh [rounds]
set -euo pipefail
bin=${CARGO_TARGET_DIR:-target}/release
rounds=${1:-2}
secs=${SECS:-5}
port=17878
for round in $(seq 1 "$rounds"); do
  for server in echo_compio echo_tokio_uring echo_tokio; do
    port=$((port + 1))
    addr=127.0.0.1:$port
    "$bin/$server" "$addr" 2 &
    pid=$!
    sleep 0.5
    for load in "bulk 4" "rr 1" "rr 32"; do
      set -- $load
      echo "round=$round server=$server load=[$(cut -d' ' -f1 /proc/loadavg)] $("$bin/loadgen" "$addr" "$1" "$2" "$secs")"
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
done
