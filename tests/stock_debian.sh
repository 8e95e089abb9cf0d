#!/usr/bin/env bash
# A new user on a stock Debian 12: builds a minimal bookworm root with debootstrap (Debian's
# python3 and git, nothing else: no pip, no venv module, no sudo), clones this repository into it
# with that git, and runs the two commands of README.md there exactly as written, as root. It
# checks that the main job prints its results table and that the whole test suite passes (with
# CI=true, as .ci/run runs it, so nothing may skip), and prints how long each command took.
#
# The commands are read out of README.md, so they cannot drift from what users are told.
#
# The root runs in mount and PID namespaces of its own (pivot_root, see in_root): its /proc,
# /sys, /dev and /run mounts vanish with it, and when it ends every process started in it is
# killed, so nothing is left running. It shares this machine's network (it needs the mirror and
# PyPI), so it also shares the locks that guard what the network and the CPU are used for:
# /run/lock, where tests/sshd.py takes the slot of its bridge and subnet, and the host-CPU lock
# of harness/scenarios/hostcpu.py.
# Without them a test run inside and one outside could take the same bridge name and delete each
# other's, or time on the same CPU at once.
#
# What differs from a booted system: a policy-rc.d stops apt-get from starting the services it
# installs (sshd, ser2net), because in this root they would run in the host's network and outlive
# the script (the tests start their own); and where this machine's network intercepts TLS with a
# CA of its own (installed under /usr/local/share/ca-certificates), the root trusts that CA too,
# as any machine on that network must.
#
# Needs root, network (the Debian mirror and PyPI) and about 5 GB under $TMPDIR. Took 6.5 minutes
# here, 4.5 of them the test command. Usage: bash tests/stock_debian.sh [--main-only]
# (KEEP=1 keeps the root; --main-only runs the main job alone, as CI does: .ci/run runs the test
# command itself, and running the whole suite twice would double CI's time for little more proof)
# Another release of the family: SUITE=noble MIRROR=http://archive.ubuntu.com/ubuntu
# DEBOOTSTRAP_ARGS="--components=main,universe" (universe is on in a stock Ubuntu), plus the
# release's archive keyring (--keyring FILE) where this machine has none for it.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
read -r -a DEBOOTSTRAP_ARGS <<<"${DEBOOTSTRAP_ARGS:-}"
say() { printf 'stock_debian: %s\n' "$*" >&2; }
elapsed() { echo $(( $(date +%s) - $1 )); }

[ "$(id -u)" -eq 0 ] || { say "run as root: debootstrap, chroot and namespaces need it"; exit 1; }
if ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# The two command lines of the first bash block under "## Two commands".
mapfile -t COMMANDS < <(awk '
    /^## Two commands/ { section = 1; next }
    section && /^## / { exit }
    section && /^```bash/ { block = 1; next }
    block && /^```/ { exit }
    block && NF && $1 !~ /^#/ { print }' README.md)
[ "${#COMMANDS[@]}" -eq 2 ] || { say "README.md: expected two commands, found: ${COMMANDS[*]}"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stock-debian.XXXXXX")
ROOTFS=$WORK/root
if [ "${KEEP:-0}" = 1 ]; then trap 'say "kept $ROOTFS"' EXIT; else trap 'rm -rf "$WORK"' EXIT; fi
export HOSTCPU=/tmp/harness-host-cpu-0.lock  # hostcpu.py's lock of root, whose tempdir is /tmp in both

start=$(date +%s)
say "debootstrap $SUITE into $ROOTFS"
# A release newer than this debootstrap is built like the newest it knows (its scripts say so).
script=/usr/share/debootstrap/scripts/$SUITE
if [ ! -e "$script" ]; then
    case $MIRROR in *ubuntu*) script=${script%/*}/gutsy ;; *) script=${script%/*}/sid ;; esac
fi
# In a mount namespace of its own, so that the /proc and /sys it mounts in the root vanish with
# it, even when it is interrupted.
unshare --mount --propagation private debootstrap --variant=minbase --include=python3,git \
    "${DEBOOTSTRAP_ARGS[@]}" "$SUITE" "$ROOTFS" "$MIRROR" "$script" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
debootstrap_s=$(elapsed "$start")
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$ROOTFS/usr/local/share/ca-certificates" "$ROOTFS/etc/ssl/certs"
    cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
    cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/"  # the bundle Debian's pip reads
fi
git -C "$REPO" bundle create "$ROOTFS/root/harness.bundle" HEAD 2>/dev/null

# One command inside the root, as root, with a login's environment (nothing of this shell's).
# pivot_root, not chroot: the root becomes the mount namespace's own /, so that tools entering a
# namespace made inside it (`ip -n`, nsenter in the SSH tests) land in this root, not the host's.
in_root() {
    unshare --mount --pid --fork --propagation private /bin/bash -c '
        set -e
        R=$1; shift
        mount --bind "$R" "$R"  # pivot_root needs the new root to be a mount point
        mount -t proc proc "$R/proc"
        mount --rbind /sys "$R/sys"
        mount --rbind /dev "$R/dev"
        mount -t tmpfs tmpfs "$R/run"
        if [ -d /run/lock ]; then mkdir "$R/run/lock" && mount --bind /run/lock "$R/run/lock"; fi
        touch "$HOSTCPU" "$R$HOSTCPU" && mount --bind "$HOSTCPU" "$R$HOSTCPU"
        cd "$R" && pivot_root . . && umount -l .  # the host root, stacked over ".", goes away
        exec /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb COLUMNS=100 \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"' in_root "$ROOTFS" "$@"
}

in_root /bin/sh -c 'cd /root && git -c advice.detachedHead=false clone -q harness.bundle harness'
python=$(in_root /usr/bin/python3 --version)
if in_root /usr/bin/python3 -m pip --version >/dev/null 2>&1; then
    say "the root has pip already: not stock"
    exit 1
fi

run_command() {  # name, command line, prefix; prints the seconds it took
    local t0 rc=0
    t0=$(date +%s)
    say "$1: $2"
    in_root /bin/bash -c "cd /root/harness && $3 $2" >"$WORK/$1.out" 2>"$WORK/$1.err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        say "$1 failed with exit $rc after $(elapsed "$t0") s:"
        tail -40 "$WORK/$1.out" >&2
        tail -40 "$WORK/$1.err" >&2
        exit 1
    fi
    elapsed "$t0"
}

main_s=$(run_command main "${COMMANDS[0]}" "")
grep -q "Invoke" "$WORK/main.out" && grep -q "Loops/s" "$WORK/main.out" ||
    { say "the main job printed no results table:"; cat "$WORK/main.out" >&2; exit 1; }
cat "$WORK/main.out"
if [ "${1:-}" = "--main-only" ]; then
    tests_s="not run (--main-only: the test command runs in .ci/run itself)"
else
    tests_s=$(run_command tests "${COMMANDS[1]}" "export CI=true &&")
    tail -3 "$WORK/tests.out"
fi

say "on a fresh $SUITE root ($python; only python3 and git installed):"
say "  debootstrap                      ${debootstrap_s} s"
say "  ${COMMANDS[0]}   ${main_s} s"
say "  ${COMMANDS[1]}   ${tests_s} s"
