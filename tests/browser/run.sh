#!/usr/bin/env bash
# The web app in a real browser: builds `medicalpro`, starts `medicalpro
# serve` on a fresh embedded DATA_DIR in a temporary directory, and drives
# Chromium through Playwright (tests/browser/test_webapp.py). Installs
# Chromium (Debian package) and Playwright (PyPI) when they are missing.
# Screenshots of every screen go to tests/browser/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/../.."

ensure_browser() {
  if [ ! -x /usr/bin/chromium ]; then
    echo "Chromium is missing: installing the chromium package" >&2
    if [ "$(id -u)" -ne 0 ]; then
      echo "run as root, or install it yourself: apt-get install -y chromium" >&2
      exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if ! python3 -c 'import playwright' 2>/dev/null; then
    echo "Playwright is missing: pip install playwright" >&2
    if ! python3 -m pip --version >/dev/null 2>&1; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
    fi
    # A Debian system Python refuses pip installs unless told otherwise.
    python3 -m pip install -q playwright 2>/dev/null \
      || python3 -m pip install -q --break-system-packages playwright
  fi
}

ensure_browser
cargo build --locked --bin medicalpro
binary="$(realpath "${CARGO_TARGET_DIR:-target}/debug/medicalpro")"

work="$(mktemp -d)"
chmod 755 "$work"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
log="$work/server.log"
(cd "$work" && env -i PATH="$PATH" HOME="$work" DATA_DIR="$work/data" LISTEN_ADDR="127.0.0.1:$port" \
  REGISTRATIONS_PER_ADDRESS_PER_HOUR=1000 RUST_LOG=warn "$binary" serve >"$log" 2>&1) &
server=$!
cleanup() {
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

healthy() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://127.0.0.1:$port/health" >/dev/null 2>&1
}
for _ in $(seq 1 450); do
  if healthy; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then cat "$log" >&2; echo "medicalpro serve exited early" >&2; exit 1; fi
  sleep 0.2
done
healthy || { cat "$log" >&2; echo "medicalpro serve never became healthy" >&2; exit 1; }

python3 tests/browser/test_webapp.py "http://127.0.0.1:$port"
