#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine: the Debian packages the tests
# start for real (OpenSSH server, socat, ser2net, iproute2 for network namespaces) and harness with
# its test extra. Run as root (CI does) or with sudo available.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    openssh-server socat ser2net iproute2 procps gcc make python3-venv >/dev/null
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
