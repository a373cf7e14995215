#!/usr/bin/env bash
# Fan-in across the cluster: 16 publishers -> 1 subscriber (meshmq_bench --scenario=fanin), QoS 0
# and QoS 1, in these configurations:
#
#   meshmqd-single  one meshmqd; publishers and subscriber on it (its cluster listener is up, with
#                   no peer: the figure of a single node)
#   meshmqd-cross   two meshmqd nodes linked as a cluster; publishers on node A, the subscriber on
#                   node B (meshmq_bench --subscriber_port): every message crosses the gRPC link,
#                   and a QoS 1 PUBACK waits for node B's acknowledgement
#   mosquitto       Mosquitto on its own, the single-node peer measured in the same run
#
# Every message is counted at the subscriber; the window (messages per publisher sent and not yet
# received) is 50, so at most 800 wait anywhere, below the subscriber queue limit of both brokers
# (1000), and no configuration drops messages by design. All nodes run on this one machine and
# share its cores with the bench: the cross-node figure pays for two brokers' work on the same
# CPUs, which separate machines would not.
#
# Configurations alternate (single, cross, mosquitto) ROUNDS times per QoS; every run starts its
# brokers fresh, on free ports of 127.0.0.1, with empty data directories.
#
# Usage: tests/bench/run_cluster_bench.sh [--out FILE]
# Environment: BUILD_DIR (default /tmp/build-bench, Release), MESHMQD, MOSQUITTO, DURATION
# (measured seconds per run, default 10), ROUNDS (default 3), QOS_LEVELS (default "0 1").
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-/tmp/build-bench}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
QOS_LEVELS=${QOS_LEVELS:-0 1}
CONFIGS="meshmqd-single meshmqd-cross mosquitto"
OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--out FILE]" >&2; exit 2 ;;
  esac
done
log() { echo "[run_cluster_bench] $*" >&2; }

targets=(meshmq_bench)
if [[ -z "${MESHMQD:-}" ]]; then
  MESHMQD=$BUILD_DIR/node/meshmqd
  targets+=(meshmqd)
fi
if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  cmake -S "$REPO" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD_DIR" --target "${targets[@]}" -j"$(nproc)" >/dev/null
BENCH=$BUILD_DIR/tests/bench/meshmq_bench

WORK=$(mktemp -d /tmp/meshmq-cbench.XXXXXX)
PIDS=()
stop_brokers() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
cleanup() { stop_brokers; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_log() {  # FILE PATTERN: polls the log until PATTERN shows up (10 s at most)
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

# Starts the brokers of configuration $1; sets PUB_PORT, SUB_PORT, BROKER_PID (node A's).
start_config() {
  local config=$1 dir=$WORK/run
  rm -rf "$dir"; mkdir -p "$dir"
  case $config in
    meshmqd-single)
      PUB_PORT=$(free_port); SUB_PORT=$PUB_PORT
      "$MESHMQD" --mqtt_listen=127.0.0.1:$PUB_PORT --cluster_listen=127.0.0.1:0 --node_id=single \
        --http_listen=off --admin_listen= \
        --data_dir="$dir/single" 2>"$dir/single.log" &
      PIDS+=($!); BROKER_PID=$!
      wait_log "$dir/single.log" "listening on mqtt" ;;
    meshmqd-cross)
      PUB_PORT=$(free_port); SUB_PORT=$(free_port)
      local ca cb
      ca=$(free_port); cb=$(free_port)
      "$MESHMQD" --mqtt_listen=127.0.0.1:$PUB_PORT --cluster_listen=127.0.0.1:$ca --node_id=a \
        --http_listen=off --admin_listen= \
        --peers=127.0.0.1:$cb --data_dir="$dir/a" 2>"$dir/a.log" &
      PIDS+=($!); BROKER_PID=$!
      "$MESHMQD" --mqtt_listen=127.0.0.1:$SUB_PORT --cluster_listen=127.0.0.1:$cb --node_id=b \
        --http_listen=off --admin_listen= \
        --peers=127.0.0.1:$ca --data_dir="$dir/b" 2>"$dir/b.log" &
      PIDS+=($!)
      wait_log "$dir/a.log" "peer b up"; wait_log "$dir/b.log" "peer a up" ;;
    mosquitto)
      PUB_PORT=$(free_port); SUB_PORT=$PUB_PORT
      printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000\n' \
        "$PUB_PORT" >"$dir/mosquitto.conf"
      "$MOSQUITTO" -c "$dir/mosquitto.conf" 2>"$dir/mosquitto.log" &
      PIDS+=($!); BROKER_PID=$!
      for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$PUB_PORT") 2>/dev/null && break; sleep 0.05; done ;;
  esac
}

RESULTS=$WORK/results
: >"$RESULTS"
for qos in $QOS_LEVELS; do
  for round in $(seq "$ROUNDS"); do
    for config in $CONFIGS; do
      start_config "$config"
      cmd=("$BENCH" --port="$PUB_PORT" --scenario=fanin --qos="$qos" --window=50
           --duration="$DURATION" --label="$config")
      [[ $SUB_PORT != "$PUB_PORT" ]] && cmd+=(--subscriber_port="$SUB_PORT")
      [[ $config != meshmqd-cross ]] && cmd+=(--broker_pid="$BROKER_PID")
      log "qos $qos round $round: $config"
      line=$("${cmd[@]}" 2>&1 | grep '^RESULT' || true)
      echo "$config qos=$qos round=$round $line" >>"$RESULTS"
      stop_brokers
    done
  done
done

report() {
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
       "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); $(uname -sr)"
  echo "Command: tests/bench/run_cluster_bench.sh (DURATION=$DURATION ROUNDS=$ROUNDS);" \
       "meshmqd $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'), $("$MOSQUITTO" -h 2>/dev/null | head -1)"
  echo
  echo "| configuration | QoS | msgs/s per round | median | p50 / p99 latency (us, median round) | complete |"
  echo "|---|---|---|---|---|---|"
  for qos in $QOS_LEVELS; do
    for config in $CONFIGS; do
      grep "^$config qos=$qos " "$RESULTS" | python3 -c '
import sys, statistics
rows = []
for line in sys.stdin:
    kv = dict(f.split("=", 1) for f in line.split() if "=" in f)
    rows.append(kv)
if not rows: sys.exit()
rates = [float(r.get("msgs_per_sec", 0)) for r in rows]
median = statistics.median(rates)
mid = min(rows, key=lambda r: abs(float(r.get("msgs_per_sec", 0)) - median))
complete = all(r.get("complete") == "1" for r in rows)
print("| %s | %s | %s | %d | %s / %s | %s |" % (sys.argv[1], sys.argv[2],
      ", ".join("%d" % x for x in rates), median, mid.get("p50_us"), mid.get("p99_us"),
      "yes" if complete else "no"))' "$config" "$qos"
    done
  done
  echo
  echo "Raw results:"
  echo '```'
  cat "$RESULTS"
  echo '```'
}
if [[ -n $OUT ]]; then report >"$OUT"; else report; fi
