#!/usr/bin/env bash
# Installs what is missing, builds, and starts one meshmq node on port 1883 with its data in
# ./data. Extra arguments go to meshmqd (e.g. --password_file=...).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
"$root/deploy/scripts/install-deps.sh"
"$root/deploy/scripts/build.sh"
exec "$root/build/node/meshmqd" --mqtt_listen=0.0.0.0:1883 --data_dir=./data --log_connections "$@"
