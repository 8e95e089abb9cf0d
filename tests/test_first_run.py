"""The README's two commands, as a new user pastes them, on a system Python that refuses pip.

The commands are read out of README.md, so README cannot change without the test running the new
text. The main command runs from a fresh ``git clone`` of this repository (its committed tree, as
a user gets it), with ``python3`` being ``/usr/bin/python3``: Debian 12's, "externally managed"
(PEP 668) on this machine and in CI, so ``python3 -m pip install -e .`` fails there. The
bootstrap part runs as written; the ``harness run`` part gets a short matrix appended (one
model, the local target, 0.1 s per mode) instead of the default minute: the same program from
the same .venv. tests/stock_debian.sh runs both commands verbatim on a fresh Debian 12 root.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

from tests.environment import needs

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = Path("/usr/bin/python3")
SHORT_RUN = ("--model", "harness/example_models/ds_cnn_kws.tflite", "--target", "local", "--duration", "0.1")


def readme_commands() -> tuple[str, str]:
    """(main job, tests): the command lines of the first bash block under "## Two commands"."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Two commands\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README.md: no ```bash block under '## Two commands'"
    lines = [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(lines) == 2, f"README.md: expected two commands, found {lines}"
    return lines[0], lines[1]


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


def stock_env(bin_dir: Path) -> dict[str, str]:
    """An environment where ``python3`` is the system one: no pyenv, no venv, no PYTHONPATH."""
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").symlink_to(SYSTEM_PYTHON)
    keep = {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("PYENV")}
    return dict(keep, COLUMNS="250",
                PATH=f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")


def test_ci_runs_the_readme_test_command_as_written() -> None:
    _, tests = readme_commands()
    assert tests in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_setup_and_bootstrap_are_posix_shell() -> None:
    """The main command runs with `sh` (dash on Debian), so bootstrap.sh must parse there."""
    for script in ("harness/bootstrap.sh", "tests/setup.sh", "tests/stock_debian.sh"):
        shell = "bash" if script.startswith("tests/") else "dash"
        p = subprocess.run([shell, "-n", str(ROOT / script)], capture_output=True, text=True)
        assert p.returncode == 0, f"{script}: {p.stderr}"


@needs(SYSTEM_PYTHON.exists(), "needs Debian's /usr/bin/python3 (apt-get install python3)")
@needs(_pypi_reachable(), "needs network: the README's command installs harness from PyPI with pip")
def test_main_command_on_the_system_python(tmp_path: Path) -> None:
    main, _ = readme_commands()
    setup, _, run = main.rpartition(" && ")
    assert setup and run.endswith("harness run"), f"README's main command: {main!r}"
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    env = stock_env(tmp_path / "bin")
    started = time.monotonic()
    p = subprocess.run(setup, shell=True, cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    setup_s = time.monotonic() - started
    assert p.returncode == 0, f"{setup!r} failed after {setup_s:.0f} s:\n{p.stdout[-3000:]}{p.stderr[-3000:]}"
    p = subprocess.run(f"{run} {' '.join(SHORT_RUN)}", shell=True, cwd=clone, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ds_cnn_kws.tflite" in p.stdout and "Invoke" in p.stdout and "local" in p.stdout
    assert "Loops/s" in p.stdout and "local · ds_cnn_kws t1: " in p.stdout  # the table and its verdict
    assert list((clone / "results").glob("*/summary.jsonl"))  # the samples landed in the clone
    # The venv's harness runs from the clone, not from whatever the test runner imports.
    p = subprocess.run([str(clone / ".venv/bin/python"), "-c", "import harness; print(harness.__file__)"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert Path(p.stdout.strip()).is_relative_to(clone)
