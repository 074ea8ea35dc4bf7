#!/usr/bin/env bash
# Render a report's index.html in headless Chromium and save a PNG screenshot, to check that the
# self-contained page (tables + embedded plots) renders offline.
#   usage: scripts/screenshot_report.sh reports/sst2-cpu/index.html out.png [WIDTHxHEIGHT]
# Needs Debian's chromium (apt-get install chromium).
set -euo pipefail
html="$(realpath "$1")"; out="$(realpath -m "$2")"; size="${3:-1600,2400}"
profile="$(mktemp -d)"; trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size="${size/x/,}" \
  --screenshot="$out" "file://$html" >/dev/null 2>&1
test -s "$out" && echo "$out"
