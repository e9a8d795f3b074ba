#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's.
#
# Installs what the tests need (git and python3 for step shells; Podman with
# its Docker API for the container executor, see scripts/containers.sh;
# later: PostgreSQL, Redis, Chromium), builds the workspace once, and runs
# every test with cargo-nextest (cargo test when nextest is missing).
# Usage: scripts/test.sh [extra nextest/cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
    if need apt-get && [ "$(id -u)" = 0 ]; then
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "missing: $* (install them, then rerun)" >&2
        exit 1
    fi
}
need git || apt_install git
need python3 || apt_install python3
# The container engine and the test image (exports DOCKER_HOST and
# KILN_TEST_IMAGE). In CI a missing engine fails the container tests.
. scripts/containers.sh
kiln_containers_setup

if [ ! -d ../shared/fixtures ]; then
    echo "missing ../shared/fixtures: the real workflow and webhook fixtures live beside the checkout" >&2
    exit 1
fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
if cargo nextest --version >/dev/null 2>&1; then
    # Doc tests first: nextest's summary must be the last thing printed.
    cargo test --workspace --doc --quiet
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi
