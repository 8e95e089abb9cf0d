#!/bin/sh
# Makes .venv in this clone and installs harness into it (editable), so that `.venv/bin/harness`
# runs. Works with the system Python of a stock Debian 12 or Ubuntu 22.04/24.04: that Python is
# "externally managed" (PEP 668), so pip refuses to install into it, and it has no working venv
# module until its pythonX.Y-venv package is there; this script then installs that package with
# apt-get (as root, or with sudo), the only change it makes outside the clone.
#
#   sh harness/bootstrap.sh           # harness and what it needs to run
#   sh harness/bootstrap.sh test      # plus the test extra (tests/setup.sh does this)
#
# PYTHON=/path/to/python3 picks another interpreter (3.10 or newer). Running it again reuses
# .venv and only brings the install up to date.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
EXTRA=${1:-}
SPEC=.
[ -z "$EXTRA" ] || SPEC=".[$EXTRA]"

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 ||
    die "no $PYTHON on PATH: install Python 3.10 or newer (apt-get install python3), or set PYTHON"
VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "$PYTHON is Python $VERSION; harness needs 3.10 or newer: set PYTHON=/path/to/python3.10-or-newer"

# A venv that runs and has pip is kept; anything else (none yet, or the half-made one that a
# failed `python3 -m venv` leaves behind) is made again.
venv_works() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; }

# Debian and Ubuntu ship the venv module's pip (ensurepip) in a package of its own.
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    case "$(readlink -f "$(command -v "$PYTHON")")" in /usr/bin/*) ;; *) return 1 ;; esac
    if [ "$(id -u)" -eq 0 ]; then SUDO=""
    elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"
    else return 1
    fi
    say "installing $* with apt-get: the system Python makes no virtual environment without it"
    # Stale or missing package lists (a fresh container has none) fail the first try.
    install="env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends"
    $SUDO $install "$@" >/dev/null || { $SUDO apt-get update -qq && $SUDO $install "$@" >/dev/null; }
}

if ! venv_works; then
    if ! err=$("$PYTHON" -m venv --clear "$VENV" 2>&1) || ! venv_works; then
        apt_install "python$VERSION-venv" ||
            die "$PYTHON cannot make a virtual environment and apt-get cannot help here:
$err
Install the venv module of Python $VERSION (Debian/Ubuntu: sudo apt-get install python$VERSION-venv),
then run this again."
        "$PYTHON" -m venv --clear "$VENV"
        venv_works || die "$VENV was made but has no pip: remove it and run this again"
    fi
fi

say "installing harness${EXTRA:+ with its $EXTRA extra} and its dependencies into $VENV" \
    "(about a minute the first time)"
# PIP_USER=1 (set by some users) would make pip refuse to install into a venv.
PIP_USER=0 "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$SPEC"
say "ready: run .venv/bin/harness, or '. .venv/bin/activate' and then harness"
