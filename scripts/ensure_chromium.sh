#!/usr/bin/env bash
# Find headless Chromium for the render tests (tests/render: the privacy officer's report as
# Chromium draws it), installing Debian's `chromium` package with apt when it is missing.
#
#   bash scripts/ensure_chromium.sh          find it, or install it (needs root or sudo)
#   bash scripts/ensure_chromium.sh --check  find it only; never installs
#
# Prints the browser's path on stdout and exits 0; when there is none and none can be
# installed, says on stderr what is needed and exits 1. Installing needs root (CI runs as
# root) or sudo; apt's output goes to a log shown only on failure.
set -euo pipefail

NAMES=(chromium chromium-browser)

find_chromium() {
    local name
    for name in "${NAMES[@]}"; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

needs() {
    cat >&2 <<MSG
ensure_chromium: $1
The render tests (tests/render) need headless Chromium: an executable named
chromium or chromium-browser on PATH. Install it with
    sudo apt-get update && sudo apt-get install -y chromium    # Debian; Ubuntu: chromium-browser
or run, as root (or with sudo available):
    bash scripts/ensure_chromium.sh
MSG
    exit 1
}

if find_chromium; then
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    needs "no Chromium found on PATH"
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    needs "no Chromium found, and installing it needs root (or sudo)"
fi
if ! command -v apt-get >/dev/null 2>&1; then
    needs "no Chromium found, and there is no apt-get here to install Debian's package"
fi

log="$(mktemp -t ensure-chromium.XXXXXX.log)"
trap 'rm -f "$log"' EXIT
echo "ensure_chromium: installing chromium with apt-get (a few minutes, once per machine)" >&2
if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 \
    || ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq -o Dpkg::Use-Pty=0 chromium >>"$log" 2>&1; then
    echo "ensure_chromium: apt-get failed; last lines of its output:" >&2
    tail -n 30 "$log" >&2
    needs "installing chromium with apt-get failed (see above)"
fi
find_chromium || needs "apt-get installed chromium, but no Chromium is on PATH"
