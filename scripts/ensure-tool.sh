#!/usr/bin/env bash
# ensure-tool.sh COMMAND_OR_FILE DEBIAN_PACKAGE WHY: install the package with apt when the
# command or file is missing and we are root; otherwise say in one line what to install.
set -euo pipefail
what=$1 package=$2 why=$3

if command -v "$what" >/dev/null 2>&1 || [ -e "$what" ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "$what not found: installing $package with apt ($why)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
    exit 0
fi
echo "error: $why needs $what; install it (Debian: sudo apt-get install $package) and retry" >&2
exit 1
