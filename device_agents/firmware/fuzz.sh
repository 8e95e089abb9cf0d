#!/usr/bin/env bash
# Long fuzz run of the device-side parser and command dispatch (host/fuzz_driver.c).
#
#   ./fuzz.sh [SECONDS=600] [BUILD_DIR=build]
#
# With clang (and its compiler-rt: apt-get install clang libclang-rt-14-dev) it runs libFuzzer
# with AddressSanitizer + UBSan, coverage-guided, from a seed corpus of valid sessions written
# here with the Python reference codec. Without clang it falls back to the gcc ASan/UBSan build
# fed with random, mutated-frame and structured inputs from Python. Either way it ends with one
# line "fuzz: N inputs in S s, result: ..." and exits non-zero on any finding (the crashing
# input is kept in BUILD_DIR, crash-* for libFuzzer).
set -euo pipefail
cd "$(dirname "$0")"
RUN_S=${1:-600}
BUILD=${2:-build}
REPO=$(cd ../.. && pwd)
mkdir -p "$BUILD/corpus"

# Seeds: structured sessions (first byte odd, see fuzz_driver.c) that reach a loaded model.
PYTHONPATH="$REPO" python3 - "$BUILD/corpus" <<'EOF'
import struct, sys
from device_agents import serial_frames as sf
out = sys.argv[1]
def frame(t, seq, payload):
    return bytes([3, t, seq]) + struct.pack("<H", len(payload)) + payload
for i, (mp, host_max, count) in enumerate([(16, 4096, 19), (0, 64, 3), (255, 8192, 200)]):
    s = bytes([1, mp]) + frame(sf.T.HELLO, 1, struct.pack("<H", host_max))
    s += bytes([14]) + struct.pack("<H", 64) + bytes(64)
    s += frame(sf.T.RANDOM_INPUT, 2, struct.pack("<I", i))
    s += frame(sf.T.SET_INPUT, 3, struct.pack("<BI", 0, 10) + bytes(20))
    s += frame(sf.T.RUN, 4, struct.pack("<BBH", 0, 0, count))
    s += frame(sf.T.RUN, 5, struct.pack("<BBH", 1, 0, count))
    s += frame(sf.T.GET_TENSOR, 6, b"\x01\x00")
    s += frame(sf.T.GET_OUTPUT, 7, struct.pack("<BIH", 0, 0, 0xFFFF))
    s += frame(sf.T.GET_PROFILE, 8, struct.pack("<H", 0))
    s += bytes([4, 5])
    open("%s/seed-session-%d" % (out, i), "wb").write(s)
raw = b"\x00" + sf.encode(sf.T.HELLO, 1, struct.pack("<H", 100)) + sf.encode(sf.T.PING, 2, b"\xa5\x5a" * 10)
open("%s/seed-raw" % out, "wb").write(raw)
EOF

start=$(date +%s)
use_libfuzzer=0
if command -v clang >/dev/null; then
    if make -s BUILD="$BUILD" libfuzzer >"$BUILD/libfuzzer-build.log" 2>&1; then
        use_libfuzzer=1
    else
        # Say it: a silent fallback would pass off a weaker fuzzer as the libFuzzer run.
        echo "fuzz: clang is installed but the libFuzzer build failed (see $BUILD/libfuzzer-build.log);" \
             "falling back to the gcc driver" >&2
    fi
fi
if [ "$use_libfuzzer" -eq 1 ]; then
    set +e
    nice "$BUILD/fuzz_libfuzzer" -max_total_time="$RUN_S" -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="$BUILD/" "$BUILD/corpus" >"$BUILD/fuzz.log" 2>&1
    status=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$BUILD/fuzz.log" | tail -1)
    engine="libFuzzer (clang, ASan+UBSan, coverage-guided)"
else
    make -s BUILD="$BUILD" "$BUILD/fuzz_driver_asan"
    set +e
    PYTHONPATH="$REPO" RUN_S="$RUN_S" DRIVER="$BUILD/fuzz_driver_asan" python3 - >"$BUILD/fuzz.log" 2>&1 <<'EOF'
import os, random, struct, subprocess, sys, time
from device_agents import serial_frames as sf
env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:halt_on_error=1", UBSAN_OPTIONS="halt_on_error=1")
proc = subprocess.Popen([os.environ["DRIVER"], "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
rng, n, end = random.Random(1), 0, time.monotonic() + float(os.environ["RUN_S"])
def one():
    kind = rng.randrange(3)
    if kind == 0:
        return b"\x00" + rng.randbytes(rng.randrange(2000))
    if kind == 1:
        wire = sf.encode(sf.T.HELLO, 200, struct.pack("<H", rng.randrange(64, 8193)))
        for _ in range(rng.randrange(10)):
            wire += sf.encode(rng.choice([rng.randrange(256), rng.randrange(1, 13)]), rng.randrange(256),
                              rng.randbytes(rng.choice([rng.randrange(12), rng.randrange(400)])))
        raw = bytearray(wire)
        for _ in range(rng.randrange(5)):
            if raw:
                i = rng.randrange(len(raw))
                op = rng.randrange(4)
                if op == 0: raw[i] ^= 1 << rng.randrange(8)
                elif op == 1: del raw[i]
                elif op == 2: raw.insert(i, raw[i])
                else: raw.insert(i, rng.randrange(256))
        return b"\x00" + bytes(raw)
    return bytes([rng.randrange(128) * 2 + 1]) + rng.randbytes(rng.randrange(1, 2000))
while time.monotonic() < end:
    data = one()
    proc.stdin.write(struct.pack("<I", len(data)) + data); proc.stdin.flush()
    if proc.stdout.read(1) != b"K":
        open("crash-input", "wb").write(data)
        print("FINDING after %d inputs, input saved to crash-input" % n); sys.exit(1)
    n += 1
proc.stdin.close(); proc.wait()
print("stat::number_of_executed_units: %d" % n)
EOF
    status=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$BUILD/fuzz.log" | tail -1)
    engine="gcc ASan+UBSan driver, Python-generated inputs"
fi
elapsed=$(( $(date +%s) - start ))
if [ "$status" -eq 0 ]; then result="no finding"; else result="FINDING (exit $status), see $BUILD/fuzz.log"; fi
echo "fuzz: ${runs:-?} inputs in ${elapsed} s with ${engine}, result: ${result}"
exit "$status"
