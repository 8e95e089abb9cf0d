#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine: the Debian packages the tests
# start for real (OpenSSH server, socat, ser2net, iproute2 for network namespaces; gcc to build and
# fuzz the C firmware protocol layer, with libc6-dev, which gcc only recommends; QEMU and an ARM
# cross compiler with newlib to run it on an emulated Cortex-M3; Chromium, headless, to load the
# HTML report as a browser does), then .venv with harness and its
# test extra (harness/bootstrap.sh: the system Python of Debian 12 / Ubuntu 24.04 refuses pip
# installs, PEP 668). Run as root (CI does) or with sudo; then `.venv/bin/python -m pytest`.
# --no-install-recommends keeps QEMU and the cross toolchain near 0.9 GB instead of 3.3 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    openssh-server socat ser2net iproute2 procps gcc libc6-dev make git python3-venv \
    qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi chromium >/dev/null
sh harness/bootstrap.sh test
bash tests/lab_venv.sh  # .venv-lab: the lab extra (labgrid) beside the main install, for tests/test_lab_install.py
