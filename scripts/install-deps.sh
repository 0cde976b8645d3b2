#!/usr/bin/env bash
# Installs every Debian package that building, running and testing Plateau needs, only those
# missing, non-interactively. Run as root on Debian 12 (it is what `make deps` calls).
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  # libraries
  libmicrohttpd-dev libuv1-dev libsqlite3-dev sqlite3 libjansson-dev libsodium-dev
  libgnutls28-dev libmodbus-dev libpcap-dev libqrencode-dev libzstd-dev
  libcurl4-gnutls-dev libcmocka-dev libinih-dev zlib1g-dev
  # tests
  python3 python3-pytest python3-requests python3-paho-mqtt
  mosquitto mosquitto-clients
  # benchmark peers
  influxdb influxdb-client wrk knot knot-dnsutils dnsperf nginx-light
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo $0)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts services it installs; Plateau's tests start their own peers on free ports.
for svc in influxdb mosquitto knot nginx; do
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
  service "$svc" stop >/dev/null 2>&1 || true
done
