"""Options are checked before anything starts, and each exit status says one thing: 2 a usage
error (argparse's own), 1 a known error, 70 a bug (EX_SOFTWARE, traceback under --debug)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agentrun import DIGITS, harness
from tests.test_run import project_dir

BAD_OPTIONS = [
    (["--iterations", "-5"], "argument --iterations: -5 is negative"),
    (["--duration", "-1"], "argument --duration: -1: give a finite number of seconds"),
    (["--duration", "nan"], "argument --duration: nan: give a finite number of seconds"),
    (["--duration", "inf"], "argument --duration: inf: give a finite number of seconds"),
    (["--warmup", "-1"], "argument --warmup: -1 is negative"),
    (["--warmup-time", "-0.5"], "argument --warmup-time: -0.5: give a finite number"),
    (["--min-iterations", "-1"], "argument --min-iterations: -1 is negative"),
    (["--blocks", "-2"], "argument --blocks: -2: give 1 or more"),
    (["--blocks", "0"], "argument --blocks: 0: give 1 or more"),
    (["--seed", "-1"], "argument --seed: -1 is negative"),
    (["--iterations", "ten"], "argument --iterations: 'ten' is not an integer"),
]


@pytest.mark.parametrize("option, message", BAD_OPTIONS, ids=[" ".join(o) for o, _ in BAD_OPTIONS])
def test_bad_run_options_are_usage_errors_before_anything_starts(tmp_path: Path, option: list[str],
                                                                 message: str) -> None:
    p = harness("run", "--target", "local", "--model", str(DIGITS), *option, "--results", "r",
                cwd=project_dir(tmp_path))
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("usage: harness run") and f"harness run: error: {message}" in p.stderr
    assert not (tmp_path / "r").exists()  # nothing started: no run directory


def test_blocks_zero_is_refused_for_every_board_kind(tmp_path: Path) -> None:
    """The agent and the MCU driver used to run one block for --blocks 0; the CLI refuses it
    before any board is touched, whatever the target's kind."""
    (tmp_path / "t.toml").write_text('[targets.mcu]\nkind = "serial"\nemulator = true\n'
                                     '[targets.pi]\nkind = "ssh"\nhost = "pi.invalid"\n')
    for target in ("mcu", "pi"):
        p = harness("run", "--targets", "t.toml", "--target", target, "--model", str(DIGITS),
                    "--blocks", "0", "--results", "r", cwd=tmp_path)
        assert p.returncode == 2 and "argument --blocks: 0: give 1 or more" in p.stderr
    assert not (tmp_path / "r").exists()


def test_a_pipeline_must_be_a_python_file(tmp_path: Path) -> None:
    notes = tmp_path / "app.txt"
    notes.write_text("def preprocess(raw):\n    return raw\n")
    p = harness("run", "--target", "local", "--model", str(DIGITS), "--pipeline", str(notes),
                "--results", "r", cwd=project_dir(tmp_path))
    assert p.returncode == 2 and f"argument --pipeline: {notes}: not a .py file" in p.stderr
    p = harness("run", "--target", "local", "--model", str(DIGITS), "--pipeline", str(tmp_path),
                "--results", "r", cwd=tmp_path)
    assert p.returncode == 2 and "no such file" in p.stderr  # a directory is not a pipeline either


def test_analyze_and_show_counts_are_checked(tmp_path: Path) -> None:
    for argv, message in ((["analyze", str(DIGITS), "--rounds", "0"], "argument --rounds: 0: give 1 or more"),
                          (["analyze", str(DIGITS), "--threads", "-1"], "argument --threads: -1: give 1 or more"),
                          (["show", "--top", "-3"], "argument --top: -3 is negative")):
        p = harness(*argv, cwd=tmp_path)
        assert p.returncode == 2 and message in p.stderr, p.stderr


def test_a_bug_exits_70_with_the_traceback_under_debug(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from harness import cli
    from harness.cli import show

    def broken(args: object) -> int:
        raise ZeroDivisionError("a bug in harness")

    monkeypatch.setattr(show, "cmd_show", broken)
    assert cli.main(["show"]) == 70
    err = capsys.readouterr().err
    assert "bug: ZeroDivisionError: a bug in harness" in err and "please report it" in err
    assert "Traceback" not in err
    assert cli.main(["--debug", "show"]) == 70
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "raise ZeroDivisionError" in err


def test_known_errors_exit_1_and_usage_errors_2(tmp_path: Path) -> None:
    assert harness("show", "--results", "nowhere", cwd=tmp_path).returncode == 1  # no runs: known
    assert harness("run", "--no-such-option", cwd=tmp_path).returncode == 2  # argparse's usage error
