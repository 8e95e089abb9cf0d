"""Nothing lost in silence: faults of the machine and of the store give one clear line and exit 1
(never "bug", never a traceback), what was measured stays readable, and a run without samples
never passes for a complete one."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.agentrun import DIGITS, QUICK, harness, json_objects
from tests.environment import is_root, require
from tests.test_run import project_dir


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("error", "bug"))]


def assert_one_clear_line(p: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and "bug" not in p.stderr and "please report" not in p.stderr
    (line,) = error_lines(p.stderr)
    for text in expected:
        assert text in line, line
    return line


# --- a benchmark without samples ------------------------------------------------------------

def test_a_board_that_ends_without_samples_is_a_failed_benchmark(tmp_path: Path) -> None:
    """An agent that says hello and its summary but sends no samples (an old or foreign agent, or
    output lost on the way): before, exit 0 and `complete: true` with nothing measured."""
    board = tmp_path / "board-python"
    lines = [{"type": "hello", "agent": "other", "board": {}, "runtime": {"name": "x"}, "clock": {}},
             {"type": "model", "path": "digits_cnn.tflite", "init_ns": 1},
             {"type": "plan", "iterations": 40, "blocks": 4, "stages": []},
             {"type": "summary", "iterations": 40, "wall_ns": 1}]
    board.write_text("#!/bin/sh\ncat <<'EOF'\n" + "".join(json.dumps({"v": 1, **m}) + "\n" for m in lines)
                     + "EOF\n")
    board.chmod(0o755)
    (tmp_path / "t.toml").write_text(f'[targets.odd]\nkind = "local"\npython = "{board}"\n')
    p = harness("run", "--targets", "t.toml", "--model", str(DIGITS), *QUICK, "--results", "r", "--json",
                cwd=tmp_path)
    assert p.returncode == 1
    (o,) = json_objects(p.stdout)
    assert o["complete"] is False and o["with_invoke"] is None
    assert o["error"]["code"] == "no_samples" and "0 samples with Invoke" in o["error"]["message"]
    assert "harness doctor odd" in o["error"]["hint"]
    run = json.loads(next((tmp_path / "r").glob("*/run.json")).read_text())
    assert run["status"] == "complete_with_errors"
    shown = harness("show", "--results", "r", "--json", cwd=tmp_path)
    assert json_objects(shown.stdout)[0]["complete"] is False


def test_zero_samples_are_never_complete() -> None:
    from harness.results.benchmark import from_lines

    header = {"target": "t", "model": "m.tflite", "model_sha256": "0" * 64, "threads": 1}
    summary = {"type": "summary", "iterations": 0}
    assert from_lines(header, [summary]).complete is False
    with_only = {"type": "samples", "mode": "with", "block": 0, "loop_ns": [5], "stages": {}}
    assert from_lines(header, [with_only, summary]).complete is False
    without = {**with_only, "mode": "without"}
    assert from_lines(header, [with_only, without, summary]).complete is True


# --- harness show keeps what can be read ----------------------------------------------------

@pytest.fixture
def stored_run(tmp_path: Path) -> Path:
    """A finished run of 4 blocks x 2 modes x 10 samples; returns its benchmark file."""
    p = harness("run", "--target", "local", "--model", str(DIGITS), *QUICK, "--results", "r",
                cwd=project_dir(tmp_path))
    assert p.returncode == 0, p.stderr
    return next((tmp_path / "r").glob("*/benchmarks/*.jsonl"))


def test_show_keeps_every_sample_past_a_corrupt_line(stored_run: Path) -> None:
    lines = stored_run.read_bytes().split(b"\n")
    number = {json.loads(x)["type"]: i for i, x in reversed(list(enumerate(lines))) if x}
    model_line = number["model"]
    lines[model_line] = b"\xff\xfe\x00garbage that is neither UTF-8 nor JSON"  # one damaged model line
    lines.insert(model_line + 3, b'{"type": "samples", "mode": "with"}')  # a samples line without samples
    stored_run.write_bytes(b"\n".join(lines))
    run = stored_run.parent.parent
    p = harness("show", str(run), "--json", cwd=run.parent)
    assert p.returncode == 0, p.stderr
    (o,) = json_objects(p.stdout)
    assert o["with_invoke"]["n"] == 40 and o["without_invoke"]["n"] == 40  # before: zero samples
    (warning,) = [x for x in p.stderr.splitlines() if "skipped" in x]
    assert str(stored_run) in warning and f"lines {model_line + 1}, {model_line + 4}," in warning


def test_a_record_file_of_binary_garbage_is_one_clear_line(stored_run: Path) -> None:
    stored_run.write_bytes(os.urandom(4096).replace(b"\n", b"\x00"))
    run = stored_run.parent.parent
    assert_one_clear_line(harness("show", str(run), cwd=run.parent), str(stored_run), "not a harness record")


def test_one_unreadable_record_hides_none_of_the_others(tmp_path: Path) -> None:
    p = harness("run", "--target", "local", "--model", str(DIGITS), "--threads", "1,2", *QUICK,
                "--results", "r", cwd=project_dir(tmp_path))
    assert p.returncode == 0, p.stderr
    first, second = sorted((tmp_path / "r").glob("*/benchmarks/*.jsonl"))
    first.write_bytes(b"\x00\x01\x02 not a record")
    shown = harness("show", "--results", "r", "--json", cwd=tmp_path)
    assert shown.returncode == 0
    assert [o["threads"] for o in json_objects(shown.stdout)] == [2]
    assert f"{first.relative_to(tmp_path)} is not a harness record file" in shown.stderr
    assert "other benchmarks are read without it" in shown.stderr


# --- I/O failures of this machine -------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A real filesystem of ``size`` (tmpfs, mounted as root): enough for a run to start, too
    small for its samples."""
    require(is_root(), "mounting a tiny tmpfs needs root")
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "160k") as mount:
        yield mount


def test_a_full_disk_is_one_line_and_run_json_says_failed(tmp_path: Path, small_disk: Path) -> None:
    model = tmp_path / "fill-the-disk.tflite"
    model.write_bytes(DIGITS.read_bytes())
    p = harness("run", "--target", "local", "--model", str(model), "--warmup", "0", "--warmup-time", "0",
                "--iterations", "20000", "--blocks", "2", "--results", str(small_disk / "r"),
                cwd=project_dir(tmp_path))
    line = assert_one_clear_line(p, "No space left on device", "--results")
    assert line.startswith("error: cannot write ")
    (run_json,) = (small_disk / "r").glob("*/run.json")
    meta = json.loads(run_json.read_text())
    assert meta["status"] == "failed" and "No space left on device" in meta["error"]
    agents = [q for q in psutil.process_iter(["cmdline"]) if str(model) in " ".join(q.info["cmdline"] or [])]
    assert agents == []
    shown = harness("show", "--results", str(small_disk / "r"), cwd=tmp_path)
    assert "run status: failed (" in shown.stderr  # and the samples that did fit are shown
    assert "fill-the-disk.tflite" in shown.stdout


def test_a_full_disk_during_a_profile_run(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "24k") as disk:
        p = harness("analyze", str(DIGITS), "--profile", "local", "--results", str(disk / "r"),
                    cwd=project_dir(tmp_path))
        assert_one_clear_line(p, "No space left on device")
        (run_json,) = (disk / "r").glob("*/run.json")
        meta = json.loads(run_json.read_text())
    assert meta["kind"] == "profile" and meta["status"] == "failed" and "No space left" in meta["error"]


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody may write: a read-only mount as root (root ignores mode bits), else mode 0555."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if is_root():
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], check=True)
    else:
        ro.chmod(0o555)
    try:
        yield ro
    finally:
        if is_root():
            subprocess.run(["umount", "-l", str(ro)], check=False)
        else:
            ro.chmod(0o755)


def test_a_read_only_results_directory(tmp_path: Path, read_only_dir: Path) -> None:
    p = harness("run", "--target", "local", "--model", str(DIGITS), *QUICK, "--results", str(read_only_dir),
                cwd=project_dir(tmp_path))
    assert_one_clear_line(p, f"cannot create the run directory {read_only_dir}/", "--results DIR")


def test_results_pointing_at_a_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a directory\n")
    p = harness("run", "--target", "local", "--model", str(DIGITS), *QUICK, "--results", "notes.txt",
                cwd=project_dir(tmp_path))
    assert_one_clear_line(p, "notes.txt", "Not a directory", "not a file")


def test_a_targets_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "t.toml").write_bytes('[targets.caf\u00e9]\nkind = "local"\n'.encode("latin-1"))
    p = harness("run", "--targets", "t.toml", "--model", str(DIGITS), cwd=tmp_path)
    assert_one_clear_line(p, "t.toml is not UTF-8 text", "byte 12", "save the targets file as UTF-8")


@pytest.mark.parametrize("json_out", [True, False], ids=["json", "table"])
def test_stdout_closed_early_exits_1_quietly_and_keeps_the_run(tmp_path: Path, json_out: bool) -> None:
    """`harness run | head -1`, with the reader gone before the first line: no traceback, no
    "bug", status 1 as tools exit on EPIPE, and the run complete on disk."""
    project_dir(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--target", "local", "--model", str(DIGITS),
                             *QUICK, "--results", "r", *(["--json"] if json_out else [])],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader goes away
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "bug" not in err and "Exception ignored" not in err
    assert error_lines(err) == []
    meta = json.loads(next((tmp_path / "r").glob("*/run.json")).read_text())
    assert meta["status"] == "complete"

