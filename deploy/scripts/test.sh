#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: unit tests and integration
# tests that start real meshmqd nodes and drive them with paho-mqtt and mosquitto clients.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
"$root/deploy/scripts/install-deps.sh" --with-tests
"$root/deploy/scripts/build.sh"
cd "$root/build"
ctest --output-on-failure --timeout 600 "$@"
