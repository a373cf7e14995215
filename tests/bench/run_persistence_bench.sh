#!/usr/bin/env bash
# QoS 1 fan-in (16 publishers -> 1 subscriber, meshmq_bench --scenario=fanin --qos=1) to a
# PERSISTENT subscriber (meshmq_bench --persistent_subscribers: Clean Session 0), against:
#
#   meshmqd-clean        meshmqd, subscriber NOT persistent (the baseline: what persistence costs)
#   meshmqd-process      meshmqd --durability=process (PUBACK once the write is in RocksDB's WAL)
#   meshmqd-fsync        meshmqd --durability=fsync   (PUBACK once the WAL is fsynced)
#   mosquitto-persist    Mosquitto, persistence true, autosave_interval 1800 (its default: nothing is
#                        written during the run, the database is saved at shutdown)
#   mosquitto-autosave1  Mosquitto, persistence true, autosave_interval 1 (a snapshot every second)
#
# Mosquitto's persistence is a snapshot of the whole in-memory database written on autosave and at
# shutdown; a PUBACK from Mosquitto does not mean the message is on disk. meshmqd acks only after
# the store write the message caused is durable (group-committed by one writer thread).
#
# The configurations are run in the order above (meshmqd and Mosquitto alternate), ROUNDS times.
# Every run starts its broker fresh on an empty data directory / persistence location (so no
# session from an earlier run can be restored), on a free port of 127.0.0.1; the broker is stopped
# (SIGTERM) after the run. Before each run the script records the load average and how busy the
# CPUs were over the preceding second; with WAIT_FOR_QUIET=N it first waits (at most N s) for a
# second with the CPUs under 15% busy, and it reports the CPU that other processes used during the
# run (machine busy time minus broker and bench). After each meshmqd run it reads the $SYS counter
# store_write_groups (meshmqd runs with --sys_interval=1s) to report messages per write group.
#
# Usage: tests/bench/run_persistence_bench.sh [--out FILE]
# Environment:
#   BUILD_DIR  build directory (default /tmp/build-bench); configured Release and built if needed
#   MESHMQD    meshmqd binary (default: $BUILD_DIR/node/meshmqd, built)
#   MOSQUITTO  mosquitto binary (default /usr/sbin/mosquitto); mosquitto_sub must be on PATH
#   DURATION   measured seconds per run (default 10; 1 s warm-up comes first)
#   ROUNDS     how many times each configuration runs (default 3)
#   CONFIGS    configurations, space separated, in run order (default: all five above)
#   MQTT_VERSION  4 (3.1.1, default: Clean Session 0) or 5 (Clean Start 0 + Session Expiry 3600)
#   WAIT_FOR_QUIET  seconds to wait at most, before each run, for a quiet second (default 0)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-/tmp/build-bench}
MOSQUITTO=${MOSQUITTO:-/usr/sbin/mosquitto}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONFIGS=${CONFIGS:-meshmqd-clean mosquitto-persist meshmqd-process mosquitto-autosave1 meshmqd-fsync}
MQTT_VERSION=${MQTT_VERSION:-4}
WAIT_FOR_QUIET=${WAIT_FOR_QUIET:-0}
OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--out FILE]" >&2; exit 2 ;;
  esac
done

log() { echo "[run_persistence_bench] $*" >&2; }

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
for c in $CONFIGS; do
  case $c in
    meshmqd-clean|meshmqd-process|meshmqd-fsync)
      [[ -x $MESHMQD ]] || { echo "missing $MESHMQD" >&2; exit 1; } ;;
    mosquitto-persist|mosquitto-autosave1)
      [[ -x $MOSQUITTO ]] || { echo "missing $MOSQUITTO" >&2; exit 1; } ;;
    *) echo "unknown configuration $c" >&2; exit 2 ;;
  esac
done
command -v mosquitto_sub >/dev/null || { echo "mosquitto_sub not found" >&2; exit 1; }

WORK=$(mktemp -d /tmp/meshmq-pbench.XXXXXX)
BROKER_PID=""
stop_broker() {
  if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
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

wait_listening() {
  local port=$1
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$BROKER_PID" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# CPU busy % of the whole machine over the next second, from /proc/stat.
cpu_busy_pct() {
  local a b
  read -ra a </proc/stat; sleep 1; read -ra b </proc/stat
  local total=0 idle i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  idle=$((b[4] - a[4] + b[5] - a[5]))
  echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}

# Busy and total jiffies of the whole machine (iowait counts as idle).
machine_ticks() {
  awk '/^cpu / {t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t}' /proc/stat
}
# utime+stime of process $1, and cutime+cstime of this shell (its reaped children), in jiffies.
proc_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0; }
children_ticks() { sed 's/^.*) //' "/proc/$$/stat" | awk '{print $14 + $15}'; }

declare -A BROKER_CMD MOSQ_CONF_DESC
# Starts configuration $1 on a fresh port and an empty directory; sets PORT, BROKER_PID, DIR.
start_broker() {
  local conf=$1
  PORT=$(free_port)
  DIR=$WORK/$conf-$PORT
  mkdir -p "$DIR"
  local cmd
  case $conf in
    meshmqd-*)
      local durability=process
      [[ $conf != meshmqd-fsync ]] || durability=fsync
      mkdir -p "$DIR/data"
      cmd="$MESHMQD --mqtt_listen=127.0.0.1:$PORT --data_dir=$DIR/data --durability=$durability --max_connections=25000 --max_queued_messages=100000 --sys_interval=1s"
      ;;
    mosquitto-*)
      local autosave=1800
      [[ $conf != mosquitto-autosave1 ]] || autosave=1
      mkdir -p "$DIR/persist"
      # `user root`: Mosquitto started as root otherwise drops to user mosquitto, which cannot
      # write under the private temp directory.
      cat >"$DIR/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
user root
max_connections -1
max_queued_messages 100000
max_inflight_messages 20
persistence true
persistence_location $DIR/persist/
autosave_interval $autosave
connection_messages false
EOF
      MOSQ_CONF_DESC[$conf]="listener PORT 127.0.0.1 / allow_anonymous true / user root / max_connections -1 / max_queued_messages 100000 / max_inflight_messages 20 / persistence true / persistence_location <tmp>/persist/ / autosave_interval $autosave / connection_messages false"
      cmd="$MOSQUITTO -c $DIR/mosquitto.conf"
      ;;
  esac
  BROKER_CMD[$conf]=$(echo "$cmd" | sed "s#$WORK/[^ /]*#<tmp>#g; s#127.0.0.1:$PORT#127.0.0.1:PORT#")
  $cmd >"$DIR/broker.log" 2>&1 &
  BROKER_PID=$!
  if ! wait_listening "$PORT"; then
    log "$conf did not start listening on $PORT; log:"
    tail -5 "$DIR/broker.log" >&2 || true
    stop_broker
    return 1
  fi
}

# Latest value of a meshmqd $SYS topic (retained), or "?".
sys_value() {
  timeout 5 mosquitto_sub -p "$PORT" -h 127.0.0.1 -C 1 -W 3 -t "$1" 2>/dev/null || echo "?"
}

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
fmt_int() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"${1:-?}"; }

declare -a RUNS=()        # "conf|round" in run order
declare -A RESULT LOAD BUSY EXTRA OTHER
NOTES=""

run_one() {
  local conf=$1 round=$2
  local key="$conf|$round"
  RUNS+=("$key")
  if [[ $WAIT_FOR_QUIET -gt 0 ]]; then
    local waited=0
    while [[ $(cpu_busy_pct) -ge 15 && $waited -lt $WAIT_FOR_QUIET ]]; do waited=$((waited + 1)); done
  fi
  BUSY[$key]=$(cpu_busy_pct)
  LOAD[$key]=$(cut -d' ' -f1-3 /proc/loadavg)
  if ! start_broker "$conf"; then
    RESULT[$key]="FAILED broker_did_not_start"
    return
  fi
  local args=(--port="$PORT" --broker_pid="$BROKER_PID" --scenario=fanin --qos=1
              --duration="$DURATION" --mqtt_version="$MQTT_VERSION")
  [[ $conf == meshmqd-clean ]] || args+=(--persistent_subscribers)
  log "round $round: $conf (port $PORT, pid $BROKER_PID, load ${LOAD[$key]}, cpu busy ${BUSY[$key]}%)"
  local out rc=0 m0 m1 b0 b1 c0 c1
  m0=$(machine_ticks); b0=$(proc_ticks "$BROKER_PID"); c0=$(children_ticks)
  out=$(timeout 300 "$BENCH" "${args[@]}" 2>&1) || rc=$?
  m1=$(machine_ticks); b1=$(proc_ticks "$BROKER_PID"); c1=$(children_ticks)
  # CPU used by everything except this broker and the bench while the bench ran (% of one core):
  # anything well above 0 means another process competed for the 2 cores during the run.
  OTHER[$key]=$(awk -v m0="$m0" -v m1="$m1" -v b="$((b1 - b0))" -v c="$((c1 - c0))" -v n="$(nproc)" '
    BEGIN { split(m0, a, " "); split(m1, z, " "); busy = z[1] - a[1]; wall = (z[2] - a[2]) / n;
            o = wall > 0 ? 100 * (busy - b - c) / wall : 0; printf "%.0f", o < 0 ? 0 : o }')
  local line
  line=$(grep '^RESULT ' <<<"$out" | tail -1 || true)
  [[ -n $line ]] || line="FAILED rc=$rc $(tail -1 <<<"$out")"
  [[ $rc -eq 0 ]] || line+=" bench_rc=$rc"
  if ! kill -0 "$BROKER_PID" 2>/dev/null; then
    line+=" broker_died=1"
    NOTES+="- $conf (round $round) died; last log lines: $(tail -3 "$DIR/broker.log" | tr '\n' ' ')"$'\n'
  fi
  local extra=""
  case $conf in
    meshmqd-*)
      sleep 1.3  # one --sys_interval, so the counters include the whole run
      local groups
      groups=$(sys_value '$SYS/broker/counters/store_write_groups')
      extra="store_write_groups=$groups"
      extra+=" messages_dropped_queue_full=$(sys_value '$SYS/broker/counters/messages_dropped_queue_full')"
      extra+=" store_errors=$(sys_value '$SYS/broker/counters/store_errors')"
      extra+=" data_dir_kb=$(du -sk "$DIR/data" | cut -f1)"
      ;;
    mosquitto-*)
      local before
      before=$(stat -c %s "$DIR/persist/mosquitto.db" 2>/dev/null || echo 0)
      extra="db_bytes_before_shutdown=$before"
      ;;
  esac
  stop_broker
  if [[ $conf == mosquitto-* ]]; then
    extra+=" db_bytes_after_shutdown=$(stat -c %s "$DIR/persist/mosquitto.db" 2>/dev/null || echo 0)"
    extra+=" db_saves=$(grep -c 'Saving in-memory database' "$DIR/broker.log" || true)"
    if grep -q 'being dropped' "$DIR/broker.log"; then
      NOTES+="- $conf (round $round) logged: $(grep -m1 'being dropped' "$DIR/broker.log" | cut -d' ' -f2-)"$'\n'
    fi
  fi
  if grep -qi 'error' "$DIR/broker.log"; then
    NOTES+="- $conf (round $round) logged: $(grep -i -m1 'error' "$DIR/broker.log")"$'\n'
  fi
  EXTRA[$key]=$extra
  RESULT[$key]=$line
  log "  $line"
  log "  $extra other_cpu_pct=${OTHER[$key]}"
  rm -rf "$DIR"
}

START=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
SECONDS=0
for round in $(seq "$ROUNDS"); do
  for conf in $CONFIGS; do run_one "$conf" "$round"; done
done
ELAPSED=$SECONDS

label() {
  case $1 in
    meshmqd-clean) echo "meshmqd, clean subscriber (baseline)" ;;
    meshmqd-process) echo "meshmqd, persistent, --durability=process" ;;
    meshmqd-fsync) echo "meshmqd, persistent, --durability=fsync" ;;
    mosquitto-persist) echo "mosquitto, persistent, persistence true (autosave 1800 s)" ;;
    mosquitto-autosave1) echo "mosquitto, persistent, persistence true, autosave_interval 1" ;;
  esac
}

report() {
  echo "## QoS 1 fan-in to a persistent subscriber: $(echo "$CONFIGS" | sed 's/ / vs /g')"
  echo
  echo "- date: $START (run took ${ELAPSED}s), $ROUNDS rounds, configurations alternated in the order listed"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr)"
  echo "- data dirs on: $(df --output=source,fstype "$WORK" | tail -1 | tr -s ' ')"
  echo "- meshmqd: $MESHMQD (commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$REPO" diff --quiet HEAD -- node storage proto 2>/dev/null || echo ', with uncommitted changes in node/ storage/ proto/'))"
  echo "- mosquitto: $({ $MOSQUITTO -h 2>/dev/null || true; } | head -1)"
  echo "- MQTT level $MQTT_VERSION, payload 64 B, 16 publishers, 1 subscriber, ${DURATION}s measured after 1 s warm-up"
  echo
  echo "| configuration | round | load before (1/5/15 min), CPU busy 1 s before | other CPU during run | msgs/s | p50 / p99 µs | broker CPU | broker RSS | complete | store groups, msgs/group |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for key in "${RUNS[@]}"; do
    local conf=${key%|*} round=${key#*|} r=${RESULT[$key]} e=${EXTRA[$key]:-}
    local complete groups
    if [[ $r != RESULT* ]]; then
      echo "| $(label "$conf") | $round | ${LOAD[$key]}, ${BUSY[$key]}% | ${OTHER[$key]:-?}% | $r | | | | | |"
      continue
    fi
    if [[ $(field "$r" complete) == 1 ]]; then complete="yes"; else
      complete="**no**: $(field "$r" received)/$(field "$r" expected), $(( $(field "$r" expected) - $(field "$r" received) )) lost, $(field "$r" gaps) gaps"
    fi
    [[ $(field "$r" stalls) == 0 ]] || complete+=", $(field "$r" stalls) stalls"
    [[ -z $(field "$r" first_error) ]] || complete+=", error $(field "$r" first_error)"
    [[ -z $(field "$r" broker_died) ]] || complete+=", **broker died**"
    groups=""
    local g
    g=$(field "$e" store_write_groups)
    if [[ -n $g && $g != "?" && $g -gt 0 ]]; then
      groups="$(fmt_int "$g"), $(awk -v s="$(field "$r" sent)" -v g="$g" 'BEGIN {printf "%.1f", s / g}')"
    fi
    echo "| $(label "$conf") | $round | ${LOAD[$key]}, ${BUSY[$key]}% | ${OTHER[$key]}% | $(fmt_int "$(field "$r" msgs_per_sec)") | $(field "$r" p50_us) / $(field "$r" p99_us) | $(field "$r" broker_cpu_pct)% | $(fmt_int "$(field "$r" broker_rss_kb)") KiB | $complete | $groups |"
  done
  echo
  echo "Other CPU = the machine's busy time while the bench ran minus the broker's and the bench's"
  echo "(% of one core; the machine has $(nproc)): near 0 means nothing else competed with the run."
  echo "msgs/group = messages published in the whole run (warm-up and drain included) / store write"
  echo "groups; the group count includes meshmqd's own \$SYS retained writes (see the baseline row)."
  echo
  if [[ -n $NOTES ]]; then
    echo "Broker messages seen during the runs:"
    echo
    echo -n "$NOTES"
    echo
  fi
  echo "Commands (PORT is a free port, PID the broker's pid, <tmp> an empty directory per run):"
  echo
  echo '```'
  for conf in $CONFIGS; do
    echo "${BROKER_CMD[$conf]:-}"
    [[ -z ${MOSQ_CONF_DESC[$conf]:-} ]] || echo "# mosquitto.conf: ${MOSQ_CONF_DESC[$conf]}"
  done
  echo "meshmq_bench --port=PORT --broker_pid=PID --scenario=fanin --qos=1 --duration=$DURATION --mqtt_version=$MQTT_VERSION   # meshmqd-clean"
  echo "meshmq_bench --port=PORT --broker_pid=PID --scenario=fanin --qos=1 --duration=$DURATION --mqtt_version=$MQTT_VERSION --persistent_subscribers   # all others"
  echo "mosquitto_sub -p PORT -C 1 -t '\$SYS/broker/counters/store_write_groups'   # after each meshmqd run"
  echo '```'
  echo
  echo "Raw results:"
  echo
  echo '```'
  for key in "${RUNS[@]}"; do
    echo "${key%|*} round ${key#*|} (load ${LOAD[$key]}): ${RESULT[$key]} ${EXTRA[$key]:-} other_cpu_pct=${OTHER[$key]:-?}"
  done
  echo '```'
}

if [[ -n $OUT ]]; then report | tee "$OUT"; else report; fi
