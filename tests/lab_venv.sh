#!/usr/bin/env bash
# Makes .venv-lab: harness with its lab extra (labgrid), beside the main test install that has none.
#
# labgrid installs pyserial-labgrid, which replaces pyserial's `serial` package, so the lab extra
# stays optional and both installs must work: the main run (python3 or .venv, made by
# tests/setup.sh) has no labgrid, and tests/test_lab_install.py runs the labgrid tests and the
# serial tests in this venv, where `serial` is pyserial-labgrid's.
#
# The venv is layered on the main install instead of repeating it (its TFLite runtimes and test
# tools are some 400 MB): a last .pth file adds the main environment's site-packages *after* this
# venv's own, so pip downloads only labgrid and what it adds, and whatever this venv holds
# (pyserial-labgrid's serial, a newer protobuf) wins. Run it again at any time: it reuses the venv.
#
#   bash tests/lab_venv.sh                 # layered on .venv/bin/python, else on python3
#   MAIN_PYTHON=/path/to/python bash tests/lab_venv.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN=${MAIN_PYTHON:-}
if [ -z "$MAIN" ]; then
    if [ -x .venv/bin/python ]; then MAIN=.venv/bin/python; else MAIN=python3; fi
fi
LAB=.venv-lab
BASE=$("$MAIN" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))')
[ -x "$LAB/bin/python" ] || "$BASE" -m venv "$LAB"
OWN=$("$LAB/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
# site.addsitedir also runs the main environment's own .pth files (editable installs, namespaces).
"$MAIN" -c '
import sys, sysconfig
dirs = dict.fromkeys(sysconfig.get_path(k) for k in ("purelib", "platlib"))
print("import site; " + "; ".join(f"site.addsitedir({d!r})" for d in dirs))
' >"$OWN/zz_harness_main.pth"
PIP_USER=0 "$LAB/bin/python" -m pip install -q --disable-pip-version-check -e '.[test,lab]'
"$LAB/bin/python" -c 'import labgrid, serial; print("lab venv:", labgrid.__name__, "with", serial.__file__)'
