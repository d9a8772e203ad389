#!/bin/sh
# System packages that twinweave's tests need beyond Python (run as root, e.g. in CI):
# Debian's chromium, which the report's browser test (pytest -m service) drives through
# Playwright, and fonts to render the page's text. Idempotent: installs only what is
# missing and runs apt-get update at most once. The Python side (playwright) comes with
# the dev extras; never run `playwright install`, the test uses /usr/bin/chromium.
# g++: PyTensor (under PyMC, for the PyMC comparison test) compiles its C kernels with it.
set -eu

PACKAGES="chromium fonts-dejavu-core fonts-liberation g++"

if command -v chromium >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 \
    && fc-list 2>/dev/null | grep -qi "dejavu\|liberation"; then
    echo "install-system-deps: chromium, g++ and fonts present; nothing to do"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: must run as root (try: sudo $0)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: apt-get not found; install these by hand: $PACKAGES" >&2
    exit 1
fi

missing=""
for package in $PACKAGES; do
    if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        echo "install-system-deps: $package already installed"
    else
        missing="$missing $package"
    fi
done

if [ -n "$missing" ]; then
    echo "install-system-deps: apt-get update"
    apt-get update
    echo "install-system-deps: apt-get install -y$missing"
    # shellcheck disable=SC2086  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
else
    echo "install-system-deps: nothing to install"
fi

if [ ! -x /usr/bin/chromium ]; then
    echo "install-system-deps: /usr/bin/chromium missing after install" >&2
    exit 1
fi
echo "install-system-deps: $(/usr/bin/chromium --version 2>/dev/null) at /usr/bin/chromium"
