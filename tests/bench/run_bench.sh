#!/usr/bin/env bash
# Runs every meshmq_bench scenario against meshmqd and Mosquitto on this machine, one broker after
# the other for each scenario, and prints a markdown report (machine, commands, table, raw results).
#
# Usage: tests/bench/run_bench.sh [--out FILE]
# Environment:
#   BUILD_DIR  build directory (default /tmp/build-bench); configured Release and built if needed
#   MESHMQD    meshmqd binary to test (default: $BUILD_DIR/node/meshmqd, built if missing)
#   MOSQUITTO  mosquitto binary (default /usr/sbin/mosquitto)
#   DURATION   measured seconds per throughput/latency scenario (default 10)
#   IDLE_CONNECTIONS  connections of the idle scenario (default 19000)
#   BROKERS    which brokers to run, space separated (default "meshmqd mosquitto")
#   MQTT_VERSIONS  protocol levels to run, space separated (default "4 5"): 4 runs every scenario
#              at MQTT 3.1.1; 5 runs fan-in, fan-out (also with 4 user properties per PUBLISH) and
#              latency QoS 0 at MQTT 5 (the bench sends Receive Maximum 20, as both brokers'
#              max_inflight is 20 for 3.1.1).
#   WAIT_FOR_QUIET  seconds to wait (at most) for the 1-minute load average to drop below 0.5
#              before starting (default 0). Brokers and bench share the cores with everything else.
#
# Every broker is started fresh for every scenario (so RSS and state of one scenario never leak into
# the next), on a free port of 127.0.0.1, and killed at exit. All traffic stays on 127.0.0.0/8.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-/tmp/build-bench}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
DURATION=${DURATION:-10}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-19000}
BROKERS=${BROKERS:-meshmqd mosquitto}
MQTT_VERSIONS=${MQTT_VERSIONS:-4 5}
OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--out FILE]" >&2; exit 2 ;;
  esac
done

# Both brokers and the bench inherit this: the idle scenario needs ~19000 descriptors on each side.
ulimit -n "$(ulimit -Hn)"

log() { echo "[run_bench] $*" >&2; }

# ---- build ------------------------------------------------------------------------------------
targets=(meshmq_bench)
if [[ -z "${MESHMQD:-}" ]]; then
  MESHMQD=$BUILD_DIR/node/meshmqd
  targets+=(meshmqd)
fi
if [[ ! -f $BUILD_DIR/build.ninja ]]; then
  log "configuring $BUILD_DIR (Release)"
  cmake -S "$REPO" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
log "building ${targets[*]}"
cmake --build "$BUILD_DIR" --target "${targets[@]}" -j"$(nproc)" >/dev/null
BENCH=$BUILD_DIR/tests/bench/meshmq_bench
[[ -x $BENCH ]] || { echo "missing $BENCH" >&2; exit 1; }
for b in $BROKERS; do
  case $b in
    meshmqd) [[ -x $MESHMQD ]] || { echo "missing $MESHMQD" >&2; exit 1; } ;;
    mosquitto) [[ -x $MOSQUITTO ]] || { echo "missing $MOSQUITTO" >&2; exit 1; } ;;
    *) echo "unknown broker $b" >&2; exit 2 ;;
  esac
done

WORK=$(mktemp -d /tmp/meshmq-bench.XXXXXX)
BROKER_PID=""
stop_broker() {
  if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  BROKER_PID=""
}
cleanup() {
  stop_broker
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Polls until the broker accepts TCP connections (10 s deadline).
wait_listening() {
  local port=$1
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$BROKER_PID" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

declare -A BROKER_CMD
# Starts broker $1 on a fresh port; sets PORT, BROKER_PID and BROKER_CMD[$1].
start_broker() {
  local name=$1
  PORT=$(free_port)
  local dir=$WORK/$name-$PORT
  mkdir -p "$dir"
  local cmd
  case $name in
    meshmqd)
      mkdir -p "$dir/data"
      cmd="$MESHMQD --mqtt_listen=127.0.0.1:$PORT --http_listen=off --admin_listen= --data_dir=$dir/data --max_connections=25000 --max_queued_messages=100000"
      ;;
    mosquitto)
      cat >"$dir/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
max_connections -1
max_queued_messages 100000
max_inflight_messages 20
persistence false
connection_messages false
EOF
      cmd="$MOSQUITTO -c $dir/mosquitto.conf"
      ;;
  esac
  BROKER_CMD[$name]=$(echo "$cmd" | sed "s#$WORK/[^ /]*#<tmp>#g; s#127.0.0.1:$PORT#127.0.0.1:PORT#")
  $cmd >"$dir/broker.log" 2>&1 &
  BROKER_PID=$!
  BROKER_LOG=$dir/broker.log
  if ! wait_listening "$PORT"; then
    log "$name did not start listening on $PORT; log:"
    tail -5 "$BROKER_LOG" >&2 || true
    stop_broker
    return 1
  fi
}

# Raw RESULT lines, keyed by "broker|scenario-name".
declare -A RESULT
declare -a BENCH_CMDS=()
declare -a SCENARIOS=()  # in the order run
NOTES=""

# run_scenario NAME BENCH-ARGS...: runs it on every broker, each on a fresh instance.
run_scenario() {
  local name=$1; shift
  local args="$*"
  SCENARIOS+=("$name")
  BENCH_CMDS+=("meshmq_bench --port=PORT --broker_pid=PID $args")
  for b in $BROKERS; do
    if ! start_broker "$b"; then
      RESULT["$b|$name"]="FAILED broker_did_not_start"
      continue
    fi
    log "$name on $b (port $PORT, pid $BROKER_PID)"
    local out rc=0
    # The bench bounds itself; `timeout` is only a last resort against a hang.
    out=$(timeout 300 "$BENCH" --port="$PORT" --broker_pid="$BROKER_PID" $args 2>&1) || rc=$?
    local line
    line=$(grep '^RESULT ' <<<"$out" | tail -1 || true)
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
      line="${line:-RESULT} broker_died=1"
      NOTES+="- $b died during $name; last log lines: $(tail -3 "$BROKER_LOG" | tr '\n' ' ')"$'\n'
    fi
    if grep -q 'being dropped' "$BROKER_LOG" 2>/dev/null; then
      NOTES+="- $b logged during $name: $(grep -m1 'being dropped' "$BROKER_LOG" | cut -d' ' -f2-)"$'\n'
    fi
    [[ -n $line ]] || line="FAILED rc=$rc $(tail -1 <<<"$out")"
    [[ $rc -eq 0 ]] || line+=" bench_rc=$rc"
    RESULT["$b|$name"]=$line
    log "  $line"
    stop_broker
  done
}

# Value of key $2 in RESULT line $1 (empty if absent).
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }

# 1234567 -> 1,234,567
fmt_int() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"${1:-?}"; }

# One table cell for a throughput scenario.
cell_rate() {
  local r=$1
  [[ $r == RESULT* ]] || { echo "${r:-n/a}"; return; }
  local s
  s="$(fmt_int "$(field "$r" msgs_per_sec)")/s"
  if [[ $(field "$r" complete) != 1 ]]; then
    s+=", **incomplete** $(field "$r" received)/$(field "$r" expected)"
  fi
  [[ $(field "$r" stalls) == 0 || -z $(field "$r" stalls) ]] || s+=", $(field "$r" stalls) stalls"
  [[ $(field "$r" dropped) == 0 || -z $(field "$r" dropped) ]] || s+=", $(field "$r" dropped) conns dropped"
  [[ -z $(field "$r" broker_died) ]] || s+=", **broker died**"
  s+=" (broker CPU $(field "$r" broker_cpu_pct)%)"
  echo "$s"
}
cell_latency() {
  local r=$1
  [[ $r == RESULT* ]] || { echo "${r:-n/a}"; return; }
  local s="$(field "$r" p50_us) / $(field "$r" p99_us) / $(field "$r" max_us) µs"
  [[ $(field "$r" complete) == 1 ]] || s+=", **incomplete** $(field "$r" received)/$(field "$r" expected)"
  [[ -z $(field "$r" broker_died) ]] || s+=", **broker died**"
  echo "$s"
}
cell_idle() {
  local r=$1
  [[ $r == RESULT* ]] || { echo "${r:-n/a}"; return; }
  local s="$(fmt_int "$(field "$r" bytes_per_conn)") B/conn ($(field "$r" rss_before_kb) → $(field "$r" rss_after_kb) KiB), $(fmt_int "$(field "$r" conns_per_sec)") conn/s"
  [[ $(field "$r" ok) == 1 ]] || s+=", **$(field "$r" connected)/$(field "$r" connections) connected, $(field "$r" dropped) dropped**"
  [[ -z $(field "$r" broker_died) ]] || s+=", **broker died**"
  echo "$s"
}

WAIT_FOR_QUIET=${WAIT_FOR_QUIET:-0}
for _ in $(seq "$WAIT_FOR_QUIET"); do
  awk '{exit !($1 < 0.5)}' /proc/loadavg && break
  sleep 1
done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
SECONDS=0

if [[ " $MQTT_VERSIONS " == *" 4 "* ]]; then
  run_scenario fanin-q0 --scenario=fanin --qos=0 --duration="$DURATION"
  run_scenario fanin-q1 --scenario=fanin --qos=1 --duration="$DURATION"
  run_scenario fanout-q0 --scenario=fanout --qos=0 --duration="$DURATION"
  run_scenario fanout-q1 --scenario=fanout --qos=1 --duration="$DURATION"
  run_scenario latency-q0 --scenario=latency --qos=0 --rate=1000 --duration="$DURATION"
  run_scenario latency-q1 --scenario=latency --qos=1 --rate=1000 --duration="$DURATION"
  run_scenario idle --scenario=idle --connections="$IDLE_CONNECTIONS"
fi
# MQTT 5: latency QoS 1 and idle are left out to keep the run near 5 minutes (at 3.1.1 they
# measure what latency QoS 0 and the 3.1.1 idle row already show).
if [[ " $MQTT_VERSIONS " == *" 5 "* ]]; then
  run_scenario v5-fanin-q0 --mqtt_version=5 --scenario=fanin --qos=0 --duration="$DURATION"
  run_scenario v5-fanin-q1 --mqtt_version=5 --scenario=fanin --qos=1 --duration="$DURATION"
  run_scenario v5-fanout-q0 --mqtt_version=5 --scenario=fanout --qos=0 --duration="$DURATION"
  run_scenario v5-fanout-q0-up4 --mqtt_version=5 --user_properties=4 --scenario=fanout --qos=0 \
    --duration="$DURATION"
  run_scenario v5-fanout-q1 --mqtt_version=5 --scenario=fanout --qos=1 --duration="$DURATION"
  run_scenario v5-latency-q0 --mqtt_version=5 --scenario=latency --qos=0 --rate=1000 \
    --duration="$DURATION"
fi

ELAPSED=$SECONDS
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

report() {
  local cols="" sep=""
  for b in $BROKERS; do cols+=" $b |"; sep+="---|"; done
  echo "## meshmq_bench: $(echo "$BROKERS" | sed 's/ / vs /g')"
  echo
  echo "- date: $START (run took ${ELAPSED}s)"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM"
  echo "- kernel: $(uname -sr); load average before: $LOAD_BEFORE, after (includes this run): $LOAD_AFTER"
  if awk -v l="${LOAD_BEFORE%% *}" 'BEGIN {exit !(l > 1)}'; then
    echo "- **warning: the machine was busy when the run started (load ${LOAD_BEFORE%% *}); figures are noisy**"
  fi
  echo "- meshmqd: $MESHMQD (commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$REPO" diff --quiet HEAD -- node 2>/dev/null || echo ', with uncommitted changes in node/'))"
  echo "- mosquitto: $({ $MOSQUITTO -h 2>/dev/null || true; } | head -1)"
  echo "- open-files limit: $(ulimit -n); payload 64 B; ${DURATION}s measured per scenario after 1 s warm-up"
  echo "- MQTT 3.1.1 unless the row says v5 (MQTT 5: CONNECT with Receive Maximum 20, empty property blocks unless stated)"
  echo
  echo "| scenario |$cols"
  echo "|---|$sep"
  row() {  # row LABEL CELL-FUNC SCENARIO; nothing if SCENARIO was not run
    [[ " ${SCENARIOS[*]} " == *" $3 "* ]] || return 0
    local line="| $1 |"
    for b in $BROKERS; do line+=" $($2 "${RESULT["$b|$3"]:-}") |"; done
    echo "$line"
  }
  row "fan-in QoS 0, 16 pub → 1 sub (msgs/s delivered)" cell_rate fanin-q0
  row "fan-in QoS 1, 16 pub → 1 sub (msgs/s delivered)" cell_rate fanin-q1
  row "fan-out QoS 0, 1 pub → 1000 sub (deliveries/s)" cell_rate fanout-q0
  row "fan-out QoS 1, 1 pub → 1000 sub (deliveries/s)" cell_rate fanout-q1
  row "latency QoS 0 at 1000 msg/s (p50 / p99 / max)" cell_latency latency-q0
  row "latency QoS 1 at 1000 msg/s (p50 / p99 / max)" cell_latency latency-q1
  row "idle: $IDLE_CONNECTIONS connections, broker RSS per connection" cell_idle idle
  row "v5 fan-in QoS 0, 16 pub → 1 sub (msgs/s delivered)" cell_rate v5-fanin-q0
  row "v5 fan-in QoS 1, 16 pub → 1 sub (msgs/s delivered)" cell_rate v5-fanin-q1
  row "v5 fan-out QoS 0, 1 pub → 1000 sub (deliveries/s)" cell_rate v5-fanout-q0
  row "v5 fan-out QoS 0, 4 user properties per PUBLISH (deliveries/s)" cell_rate v5-fanout-q0-up4
  row "v5 fan-out QoS 1, 1 pub → 1000 sub (deliveries/s)" cell_rate v5-fanout-q1
  row "v5 latency QoS 0 at 1000 msg/s (p50 / p99 / max)" cell_latency v5-latency-q0
  echo
  if [[ -n $NOTES ]]; then
    echo "Broker messages seen during the run:"
    echo
    echo -n "$NOTES"
    echo
  fi
  echo "Commands (PORT is a free port, PID the broker's pid, each broker restarted per scenario):"
  echo
  echo '```'
  for b in $BROKERS; do echo "${BROKER_CMD[$b]:-}"; done
  [[ " $BROKERS " != *" mosquitto "* ]] || echo "# mosquitto.conf: listener PORT 127.0.0.1 / allow_anonymous true / max_connections -1 / max_queued_messages 100000 / max_inflight_messages 20 / persistence false / connection_messages false"
  for c in "${BENCH_CMDS[@]}"; do echo "$c"; done
  echo '```'
  echo
  echo "Raw results:"
  echo
  echo '```'
  for name in "${SCENARIOS[@]}"; do
    for b in $BROKERS; do echo "$b $name: ${RESULT["$b|$name"]:-}"; done
  done
  echo '```'
}

if [[ -n $OUT ]]; then report | tee "$OUT"; else report; fi
