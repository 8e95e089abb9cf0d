"""The stream runs the report's stream tests read, made once per test session with the real agent
on ``local`` and a pipeline whose preprocess busy-waits T (tests/streamkit.py):

- a stream of Poisson arrivals at a mean period a little above T, so that some frames queue
  behind others and come late (the timeline's misses) and others do not;
- a --find-max search with the p90 criterion (a short one), whose trials the rate figure draws;
- a soak on a board whose /sys is a recorded Raspberry Pi 4 tree (tests/fixtures/boards/pi4):
  the same local agent and runtime, started by a ``python`` that enters a private mount
  namespace (``unshare -m``, root only) with that tree bind-mounted over /sys, so the agent's
  own readers report its thermal zone and CPU clocks in every ``board_state`` sample.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from tests.agentrun import DIGITS, ROOT
from tests.environment import have, is_root, require
from tests.streamkit import busy_pipeline

T_MS = 4.0
PI4_SYS = ROOT / "tests" / "fixtures" / "boards" / "pi4" / "sys"


@dataclass(frozen=True)
class StreamRuns:
    results: Path
    poisson: str
    search: str
    soak: str

    @property
    def all(self) -> list[str]:
        return [self.poisson, self.search, self.soak]


def pi4_python(directory: Path) -> Path:
    """An interpreter for targets.toml that runs the agent with the recorded Pi 4 tree as /sys."""
    path = directory / "pi4-python"
    path.write_text("#!/bin/sh\n# the recorded Raspberry Pi 4 sysfs tree as /sys, in a mount namespace of its own\n"
                    f"exec unshare -m sh -c 'mount --bind \"$0\" /sys && exec \"$@\"' {PI4_SYS} {sys.executable} "
                    '"$@"\n')
    path.chmod(0o755)
    return path


def _run(results: Path, command: list[str]) -> str:
    before = set(results.iterdir()) if results.exists() else set()
    assert main([*command, "--results", str(results)]) == 0
    (made,) = set(results.iterdir()) - before
    return made.name


@pytest.fixture(scope="session")
def stream_runs(tmp_path_factory: pytest.TempPathFactory) -> StreamRuns:
    require(is_root() and have("unshare") and shutil.which("mount") is not None,
            "the soak board's mount namespace needs root and unshare (util-linux)")
    tmp = tmp_path_factory.mktemp("report-streams")
    results = tmp / "results"
    targets = tmp / "targets.toml"
    targets.write_text(f'[targets.local]\nkind = "local"\n\n[targets.pi4]\nkind = "local"\n'
                       f'python = "{pi4_python(tmp)}"\n')
    common = ["--targets", str(targets), "--model", str(DIGITS), "--pipeline", str(busy_pipeline(tmp, T_MS))]
    poisson = _run(results, ["stream", *common, "--target", "local", "--poisson", f"{0.9e3 / T_MS:g}",
                             "--minutes", "0.04"])
    search = _run(results, ["stream", *common, "--target", "local", "--find-max", "--max-late", "10",
                            "--minutes", "0.04"])
    soak = _run(results, ["soak", *common, "--target", "pi4", "--rate", "50", "--minutes", "0.15",
                          "--state-interval", "0.5"])
    return StreamRuns(results, poisson, search, soak)


@pytest.fixture(scope="session")
def stream_page(stream_runs: StreamRuns, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`harness report` of the three stream runs (the HTML file)."""
    out = tmp_path_factory.mktemp("report-streams-page") / "streams.html"
    assert main(["report", *stream_runs.all, "--results", str(stream_runs.results), "-o", str(out)]) == 0
    return out


def shown(stream_runs: StreamRuns, run: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """`harness show RUN --json`: the stream objects, as the contract gives them."""
    capsys.readouterr()
    assert main(["show", run, "--results", str(stream_runs.results), "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]
