#!/usr/bin/env bash
# Installs what building and testing meshmq needs from Debian 12's packages, skipping what is
# already there. Run as root (or with sudo available).
set -euo pipefail

build_packages=(g++ cmake ninja-build pkg-config libabsl-dev libssl-dev libgtest-dev libgmock-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler librocksdb-dev
  libcivetweb-dev)
test_packages=(python3 python3-paho-mqtt mosquitto mosquitto-clients procps iproute2 iptables)

wanted=("${build_packages[@]}")
if [[ "${1:-}" == "--with-tests" ]]; then wanted+=("${test_packages[@]}"); fi

missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
# The deploy tests (tests/deploy) fetch helm and Kubernetes' schemas with npm. Judged by the
# commands, not the packages: a Node.js from elsewhere (nodesource's nodejs carries its own npm)
# must not be replaced by Debian's.
if [[ "${1:-}" == "--with-tests" ]] && ! { command -v node && command -v npm; } >/dev/null; then
  missing+=(nodejs npm)
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"

# Debian starts the mosquitto service when it is installed; the tests only use Mosquitto as a
# reference and start their own, so don't let the system one hold port 1883.
if [[ " ${missing[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null &&
   systemctl is-active --quiet mosquitto 2>/dev/null; then
  $sudo systemctl disable --now mosquitto || true
fi
