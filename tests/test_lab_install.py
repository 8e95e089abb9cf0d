"""Both installs work: harness without the lab extra (this venv), and with it (.venv-lab).

labgrid installs pyserial-labgrid, which replaces pyserial's ``serial`` package, so the extra is
optional. Here, in the main install, labgrid is absent, pyserial's own serial is the one loaded,
and a labgrid target is one clear line naming the extra. Then the labgrid tests and the serial
tests run in the venv that has the extra (made by tests/lab_venv.sh, which tests/setup.sh runs),
where pytest collects them (tests/conftest.py) and this module is left out.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

from tests.agentrun import ROOT, harness
from tests.environment import require

LAB_PYTHON = ROOT / ".venv-lab" / "bin" / "python"


def test_without_the_lab_extra_a_labgrid_target_names_the_extra(tmp_path: Path) -> None:
    import serial

    assert importlib.util.find_spec("labgrid") is None
    assert "pyserial-labgrid" not in str(serial.__file__) and hasattr(serial, "serial_for_url")
    (tmp_path / "targets.toml").write_text('[targets.pi]\nkind = "labgrid"\nplace = "rpi4-03"\n')
    p = harness("run", "--target", "pi", "--iterations", "10", "--results", "r", cwd=tmp_path)
    assert p.returncode == 1
    errors = [line for line in p.stderr.splitlines() if line.startswith("error")]
    assert errors and "labgrid targets need labgrid" in errors[0] and "pip install -e '.[lab]'" in errors[0]


def test_the_labgrid_and_serial_tests_pass_in_the_venv_with_the_lab_extra() -> None:
    require(LAB_PYTHON.exists(), f"needs {LAB_PYTHON}: run bash tests/lab_venv.sh (tests/setup.sh does)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    tests = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_labgrid_*.py"))
    tests += sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_serial_*.py"))
    p = subprocess.run([str(LAB_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *tests],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = "\n".join(p.stdout.splitlines()[-40:])
    assert p.returncode == 0, tail + p.stderr[-2000:]
    assert " passed" in tail and " skipped" not in tail and "error" not in tail.splitlines()[-1], tail
