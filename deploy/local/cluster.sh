#!/usr/bin/env bash
# An N-node meshmq cluster on this machine, to try the cluster out (README "Deploying").
#
#   deploy/local/cluster.sh start [N] [-- MESHMQD_FLAGS...]   start N nodes (default 3) and wait
#                                                             until every one is ready
#   deploy/local/cluster.sh status                            each node: running? ready? ports
#   deploy/local/cluster.sh stop                              SIGTERM each node (a graceful
#                                                             leave) and wait until it has exited
#
# Node i (n1, n2, ...) listens on 127.0.0.1 only: MQTT on BASE+i-1, cluster BASE+6000+i-1,
# admin BASE+8000+i-1, HTTP BASE+16200+i-1; with the default BASE, node 1 has meshmqd's usual
# ports 1883, 7883, 9883 and 18083. Every node is given the others' cluster ports as --peers.
#
# Environment:
#   MESHMQ_LOCAL_DIR        pid files, logs and data dirs (default: <repo>/build/local-cluster)
#   MESHMQ_LOCAL_BASE_PORT  BASE above (default 1883)
#   MESHMQ_LOCAL_TIMEOUT    seconds start waits for readiness, and stop for each node's exit
#                           (default 60)
#   MESHMQD, MESHMQCTL      the binaries (default: build/, built with deploy/scripts/build.sh if
#                           meshmqd is missing there)
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
state_dir="${MESHMQ_LOCAL_DIR:-$repo/build/local-cluster}"
base_port="${MESHMQ_LOCAL_BASE_PORT:-1883}"
timeout_seconds="${MESHMQ_LOCAL_TIMEOUT:-60}"
host=127.0.0.1

die() { echo "cluster.sh: $*" >&2; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# Ports of node $1 (1-based).
mqtt_port() { echo $((base_port + $1 - 1)); }
cluster_port() { echo $((base_port + 6000 + $1 - 1)); }
admin_port() { echo $((base_port + 8000 + $1 - 1)); }
http_port() { echo $((base_port + 16200 + $1 - 1)); }

node_dir() { echo "$state_dir/n$1"; }

# The node numbers that have a directory here, in order.
known_nodes() {
  local dir
  for dir in "$state_dir"/n*; do
    if [[ -d "$dir" && "$(basename "$dir")" =~ ^n([0-9]+)$ ]]; then echo "${BASH_REMATCH[1]}"; fi
  done | sort -n
}

# The pid of node $1's meshmqd if it runs: the pid file's process must still be that node (a
# stale pid may belong to something else by now), and a zombie has exited.
running_pid() {
  local pid_file pid state
  pid_file="$(node_dir "$1")/meshmqd.pid"
  [[ -f "$pid_file" ]] || return 1
  pid="$(<"$pid_file")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  local args
  args="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
  [[ "$args" == *"--node_id=n$1 "* && "$args" == *"--data_dir=$(node_dir "$1")/data "* ]] ||
    return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ "$state" != "Z" ]] || return 1
  echo "$pid"
}

# The response to GET http://127.0.0.1:$1$2 (status line, headers, body), or nothing if nobody
# answers. Bash's /dev/tcp, so that neither curl nor wget is needed.
http_get() {
  timeout 3 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" "$2" >&3
    cat <&3' "$host" "$1" "$2" 2>/dev/null || true
}

http_status() { http_get "$1" "$2" | head -n 1 | awk '{print $2}'; }

# Node $1 is ready for the tour once /readyz says so (it serves: in touch with most of the
# cluster) and it is linked with every one of the $2 nodes, routes synced: a node is ready with
# a majority, and a message published on it meanwhile would miss subscribers on the others.
node_ready() {
  [[ "$(http_status "$(http_port "$1")" /readyz)" == "200" ]] || return 1
  [[ "$(peers_up "$1")" -eq $(($2 - 1)) ]]
}

# How many peers node $1 is linked with both ways, routes synced (its /metrics).
peers_up() {
  http_get "$(http_port "$1")" /metrics | grep -c '^meshmq_cluster_peer_up{.*} 1' || true
}

port_in_use() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$1" 2>/dev/null; }

find_binaries() {
  meshmqd="${MESHMQD:-$repo/build/node/meshmqd}"
  meshmqctl="${MESHMQCTL:-$repo/build/node/admin/meshmqctl}"
  if [[ ! -x "$meshmqd" && -z "${MESHMQD:-}" ]]; then
    echo "cluster.sh: $meshmqd is missing: building it (deploy/scripts/build.sh)" >&2
    "$repo/deploy/scripts/build.sh" >&2
  fi
  [[ -x "$meshmqd" ]] || die "no meshmqd at $meshmqd (set MESHMQD)"
}

cmd_start() {
  local count=3
  if [[ $# -gt 0 && "$1" != "--" ]]; then count="$1"; shift; fi
  # Up to 99 nodes: more than one machine runs well, and the four port ranges stay apart.
  [[ "$count" =~ ^[1-9][0-9]?$ ]] || die "start: N must be a number from 1 to 99, not '$count'"
  if [[ $# -gt 0 ]]; then
    [[ "$1" == "--" ]] || die "start: unexpected '$1' (meshmqd flags go after --)"
    shift
  fi
  local extra_flags=("$@")
  [[ "$base_port" =~ ^[0-9]+$ ]] && ((base_port >= 1 && base_port + 16200 + count - 1 <= 65535)) ||
    die "MESHMQ_LOCAL_BASE_PORT=$base_port leaves no room for $count nodes' ports"
  local i
  for i in $(known_nodes); do
    running_pid "$i" >/dev/null && die "node n$i is already running (cluster.sh stop first)"
  done
  for i in $(seq 1 "$count"); do
    local port
    for port in $(mqtt_port "$i") $(cluster_port "$i") $(admin_port "$i") $(http_port "$i"); do
      port_in_use "$port" && die "port $port is in use (choose another MESHMQ_LOCAL_BASE_PORT)"
    done
  done
  find_binaries

  mkdir -p "$state_dir"
  for i in $(seq 1 "$count"); do
    local dir peers=() j
    dir="$(node_dir "$i")"
    mkdir -p "$dir"
    for j in $(seq 1 "$count"); do
      if [[ $j -ne $i ]]; then peers+=("$host:$(cluster_port "$j")"); fi
    done
    local flags=(
      "--node_id=n$i"
      "--data_dir=$dir/data"
      "--mqtt_listen=$host:$(mqtt_port "$i")"
      "--cluster_listen=$host:$(cluster_port "$i")"
      "--admin_listen=$host:$(admin_port "$i")"
      "--http_listen=$host:$(http_port "$i")"
    )
    if [[ ${#peers[@]} -gt 0 ]]; then flags+=("--peers=$(IFS=,; echo "${peers[*]}")"); fi
    echo "== $(date -u +%FT%TZ) start: $meshmqd ${flags[*]} ${extra_flags[*]}" >>"$dir/meshmqd.log"
    # Detached from this script: stdin from /dev/null, output to the log.
    "$meshmqd" "${flags[@]}" "${extra_flags[@]}" </dev/null >>"$dir/meshmqd.log" 2>&1 &
    echo $! >"$dir/meshmqd.pid"
  done

  # Every node must come up and be ready (in touch with the others): poll, with a deadline.
  local deadline=$((SECONDS + timeout_seconds)) waiting
  while true; do
    waiting=()
    for i in $(seq 1 "$count"); do
      if ! running_pid "$i" >/dev/null; then
        echo "cluster.sh: node n$i exited; the end of $(node_dir "$i")/meshmqd.log:" >&2
        tail -n 20 "$(node_dir "$i")/meshmqd.log" >&2
        cmd_stop >&2 || true
        exit 1
      fi
      node_ready "$i" "$count" || waiting+=("n$i")
    done
    [[ ${#waiting[@]} -eq 0 ]] && break
    if ((SECONDS >= deadline)); then
      echo "cluster.sh: not ready after ${timeout_seconds}s: ${waiting[*]} (logs in $state_dir)" >&2
      cmd_stop >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  print_tour "$count"
}

print_tour() {
  local count=$1 last=$1
  echo "meshmq: $count node(s) ready, state in $state_dir"
  local i
  for i in $(seq 1 "$count"); do
    printf '  n%-3s mqtt %s:%-5s cluster :%-5s admin :%-5s http :%-5s pid %s\n' "$i" "$host" \
      "$(mqtt_port "$i")" "$(cluster_port "$i")" "$(admin_port "$i")" "$(http_port "$i")" \
      "$(running_pid "$i")"
  done
  cat <<EOF

Subscribe on the last node, publish on the first (the message crosses the cluster):
  mosquitto_sub -h $host -p $(mqtt_port "$last") -t 'demo/#' -v &
  mosquitto_pub -h $host -p $(mqtt_port 1) -t demo/hello -m hi
Administer (any node answers for all of them):
  $meshmqctl --server $host:$(admin_port 1) status
  $meshmqctl --server $host:$(admin_port 1) clients list
Metrics and health:
  curl -s $host:$(http_port 1)/metrics
  curl -s $host:$(http_port 1)/readyz
Logs: $state_dir/n*/meshmqd.log
Stop: $0 stop
EOF
}

cmd_status() {
  local nodes i pid ready down=0
  nodes="$(known_nodes)"
  [[ -n "$nodes" ]] || { echo "no nodes in $state_dir"; return 1; }
  for i in $nodes; do
    if pid="$(running_pid "$i")"; then
      ready="$(http_status "$(http_port "$i")" /readyz)"
      [[ "$ready" == "200" ]] && ready="ready" || ready="not ready (/readyz: ${ready:-no answer})"
      echo "n$i running, pid $pid, $ready, $(peers_up "$i") peer(s) up," \
        "mqtt $host:$(mqtt_port "$i"), admin $host:$(admin_port "$i")"
    else
      echo "n$i stopped (log: $(node_dir "$i")/meshmqd.log)"
      down=1
    fi
  done
  return $down
}

# Stops the nodes one at a time, the last first: each leaves gracefully and hands its sessions
# to the nodes still running, so the data dirs keep them for the next start.
cmd_stop() {
  local i pid deadline failed=0 any=0
  for i in $(known_nodes | sort -rn); do
    pid="$(running_pid "$i")" || { rm -f "$(node_dir "$i")/meshmqd.pid"; continue; }
    any=1
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + timeout_seconds))
    while running_pid "$i" >/dev/null; do
      if ((SECONDS >= deadline)); then
        echo "cluster.sh: n$i (pid $pid) still ran ${timeout_seconds}s after SIGTERM: killed" >&2
        kill -KILL "$pid" 2>/dev/null || true
        failed=1
        break
      fi
      sleep 0.1
    done
    rm -f "$(node_dir "$i")/meshmqd.pid"
    echo "n$i stopped"
  done
  [[ $any -eq 1 ]] || echo "no node running in $state_dir"
  return $failed
}

[[ $# -ge 1 ]] || usage
command="$1"
shift
case "$command" in
  start) cmd_start "$@" ;;
  status) [[ $# -eq 0 ]] || usage; cmd_status ;;
  stop) [[ $# -eq 0 ]] || usage; cmd_stop ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
