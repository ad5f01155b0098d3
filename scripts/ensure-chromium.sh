#!/usr/bin/env bash
# The report test opens report.html in headless Chromium. Install Debian's chromium with apt when
# we are root, otherwise say what is missing.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "chromium not found: installing it with apt (for the report's browser test)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    exit 0
fi
echo "error: the report test needs Chromium; install it (Debian: sudo apt-get install chromium) and retry" >&2
exit 1
