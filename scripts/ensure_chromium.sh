#!/usr/bin/env bash
# Install Debian's chromium when it is missing: tests/test_report.py renders the privacy
# officer's report in headless Chromium. A no-op where `chromium` is already on PATH.
# Needs root (CI runs as root) or sudo; apt's output goes to a log shown only on failure.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "ensure_chromium: chromium is missing and installing it needs root (or sudo)" >&2
    exit 1
fi

log="$(mktemp -t ensure-chromium.XXXXXX.log)"
trap 'rm -f "$log"' EXIT
echo "ensure_chromium: installing chromium with apt-get (a few minutes, once per machine)"
if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 \
    || ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq -o Dpkg::Use-Pty=0 chromium >>"$log" 2>&1; then
    echo "ensure_chromium: apt-get failed; last lines of its output:" >&2
    tail -n 30 "$log" >&2
    exit 1
fi
command -v chromium >/dev/null 2>&1 || { echo "ensure_chromium: no chromium after install" >&2; exit 1; }
