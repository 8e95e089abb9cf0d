"""Per-layer profiling on the one path from a plan to a board to the store: the run it leaves in
results/, Ctrl-C and cancel, the host-CPU turns it shares with benchmarks, and runs of several
kinds in one store ("latest" by kind). Real agents, real runtime, real models."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.cli import main
from harness.config import Target, parse_targets
from harness.lab.drivers.base import Message
from harness.models.analysis import analyze
from harness.plan import Plan, ProfileJob, ProfilePlan
from harness.results.benchmark import SCHEMA_VERSION
from harness.results.layers import layer_profile
from harness.results.store import RunStore
from harness.scenarios.benchmark import BenchmarkScenario, plan_jobs
from harness.scenarios.hostcpu import HostCpu
from harness.scenarios.profile import ProfileOutcome, run_profile
from harness.scenarios.runner import Quiet, Runner
from tests.agentrun import DIGITS, KWS, MOBILENET, ROOT, json_objects

QUICK = ["--warmup", "2", "--warmup-time", "0", "--iterations", "20", "--blocks", "2"]


def local(name: str = "local") -> Target:
    return parse_targets(f'[targets.{name}]\nkind = "local"\n', "test-targets.toml")[name]


def targets_file(tmp_path: Path) -> Path:
    path = tmp_path / "targets.toml"
    path.write_text('[targets.local]\nkind = "local"\n')
    return path


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def agents(marker: str) -> list[psutil.Process]:
    """Live agents whose command line names a file under ``marker`` (this test's directory)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if any(c.endswith("tflite_agent.py") for c in cmd) and any(marker in c for c in cmd):
            found.append(p)
    return found


class AgentWatch(threading.Thread):
    """Samples which agent modes ("run", "profile") are alive under ``marker``, every 20 ms."""

    def __init__(self, marker: str) -> None:
        super().__init__(daemon=True)
        self.marker = marker
        self.samples: list[frozenset[str]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            modes = set()
            for p in agents(self.marker):
                try:
                    cmd = p.cmdline()
                except psutil.Error:
                    continue
                agent = next(i for i, c in enumerate(cmd) if c.endswith("tflite_agent.py"))
                modes.add(cmd[agent + 1])
            self.samples.append(frozenset(modes))
            time.sleep(0.02)

    def __enter__(self) -> AgentWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(timeout=5)

    @property
    def seen(self) -> set[str]:
        return set().union(*self.samples)

    @property
    def overlapped(self) -> bool:
        return any(len(s) > 1 for s in self.samples)


# --- a profile leaves a run --------------------------------------------------------------------

def test_profile_leaves_a_run_whose_raw_rounds_recompute_the_layers(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    assert main(["analyze", str(DIGITS), "--targets", str(targets_file(tmp_path)), "--profile", "local",
                 "--rounds", "4", "--results", str(results), "--json"]) == 0
    prof = json.loads(capsys.readouterr().out)["profile"]
    run = results / prof["run_id"]
    meta = json.loads((run / "run.json").read_text())
    assert (meta["kind"], meta["status"], meta["schema_version"]) == ("profile", "complete", SCHEMA_VERSION)
    assert meta["target"] == "local" and meta["plan"]["rounds"] == 4
    (record,) = (run / "profiles").glob("*.jsonl")
    lines = lines_of(record)
    assert lines[0]["type"] == "header" and lines[0]["kind"] == "profile"
    assert lines[-1]["type"] == "end" and lines[-1]["complete"] is True
    rounds = [m for m in lines if m["type"] == "round"]
    assert [m["round"] for m in rounds] == [0, 1, 2, 3]
    n = len(analyze(DIGITS).ops)
    assert all(len(m["ns"]) == n + 2 and len(m["cpu_ns"]) == n + 2 for m in rounds)  # prefixes 0..n + model
    # The figures are the stored raw rounds through the per-layer maths, and nothing else.
    plan = next(m for m in lines if m["type"] == "plan")
    again = layer_profile(analyze(DIGITS), [m["ns"] for m in rounds], slices=plan["slices"])
    assert [layer["ns"] for layer in prof["layers"]] == [round(layer.ns) for layer in again.layers]
    assert prof["sum_check"] == again.sum_check and prof["whole_ns"] == round(again.whole_ns)
    assert prof["rounds_ns"] == [m["ns"] for m in rounds]
    # harness show reads the same run back and prints the same profile
    assert main(["show", prof["run_id"], "--results", str(results), "--json"]) == 0
    (shown,) = json_objects(capsys.readouterr().out)
    assert {k: v for k, v in shown.items() if k in prof} == prof
    assert shown["complete"] is True and shown["error"] is None
    assert main(["show", str(run)]) == 0
    assert "layers add up" in capsys.readouterr().out
    # --profile-from accepts the profile run too
    assert main(["analyze", str(DIGITS), "--profile-from", prof["run_id"], "--results", str(results), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["profile"]["layers"] == prof["layers"]


# --- Ctrl-C and cancel ---------------------------------------------------------------------------

def test_ctrl_c_during_a_profile_stops_the_agent_and_keeps_the_rounds(tmp_path: Path) -> None:
    model = tmp_path / "interrupt-me.tflite"
    shutil.copy(MOBILENET, model)
    proc = subprocess.Popen([sys.executable, "-m", "harness", "analyze", str(model), "--profile", "local",
                             "--targets", str(targets_file(tmp_path)), "--rounds", "5000", "--results", "r"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=dict(os.environ, COLUMNS="200"))
    deadline = time.monotonic() + 90
    record = None
    while time.monotonic() < deadline and record is None:
        files = list((tmp_path / "r").glob("*/profiles/*.jsonl"))
        if files and files[0].read_text().count('"type":"round"') >= 2:
            record = files[0]
        time.sleep(0.1)
    assert record is not None, "no rounds arrived"
    assert agents(str(tmp_path))  # the agent is running now
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "harness show" in err
    assert agents(str(tmp_path)) == []
    assert "layers add up" in out  # what was measured is shown
    run = record.parents[1]
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    lines = lines_of(record)
    assert lines[-1]["type"] == "end" and lines[-1]["complete"] is False and lines[-1]["reason"] == "interrupted"
    kept = sum(m["type"] == "round" for m in lines)
    assert 2 <= kept < 5000
    shown = subprocess.run([sys.executable, "-m", "harness", "show", run.name, "--results", "r"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, env=dict(os.environ, COLUMNS="200"))
    assert shown.returncode == 0, shown.stderr
    assert f"incomplete: {kept} of 5000 rounds" in shown.stdout and "run status: interrupted" in shown.stderr


class CancelAfter(Quiet):
    """Sets ``cancel`` when the ``rounds``-th round arrives."""

    def __init__(self, cancel: threading.Event, rounds: int) -> None:
        self.cancel, self.rounds, self.seen = cancel, rounds, 0

    def job_message(self, job: object, msg: Message) -> None:
        if msg.get("type") == "round":
            self.seen += 1
            if self.seen == self.rounds:
                self.cancel.set()


def test_the_cancel_event_stops_a_profile(tmp_path: Path) -> None:
    model = tmp_path / "cancel-me.tflite"
    shutil.copy(MOBILENET, model)
    cancel = threading.Event()
    observer = CancelAfter(cancel, 2)
    t0 = time.monotonic()
    run = run_profile(local(), model, tmp_path / "prefixes", tmp_path / "results", ProfilePlan(rounds=5000),
                      host_cpu=HostCpu(tmp_path / "cpu.lock"), observer=observer, cancel=cancel)
    assert time.monotonic() - t0 < 60  # 5000 rounds would take many minutes
    assert run.status == "interrupted" and agents(str(tmp_path)) == []
    assert isinstance(run.outcome, ProfileOutcome) and run.outcome.error is None and not run.outcome.complete
    assert run.outcome.profile is not None and len(run.outcome.profile.rounds_ns) >= 2
    assert any(note.startswith("incomplete:") for note in run.outcome.profile.notes)
    assert json.loads((run.path / "run.json").read_text())["status"] == "interrupted"


# --- the host CPU: a profile and a benchmark on this machine take turns --------------------------

def _profile_job(tmp_path: Path, lock: Path) -> None:
    model = tmp_path / "profiled.tflite"
    shutil.copy(DIGITS, model)
    run = run_profile(local(), model, tmp_path / "prefixes", tmp_path / "profile-results",
                      ProfilePlan(rounds=40), host_cpu=HostCpu(lock))
    assert run.status == "complete", run.outcome


def _benchmark_job(tmp_path: Path, lock: Path) -> None:
    model = tmp_path / "benchmarked.tflite"
    shutil.copy(KWS, model)
    store = RunStore(tmp_path / "bench-results", kind="benchmark")
    jobs, _ = plan_jobs([local()], [model], [1], Plan(duration_s=1.0, blocks=4, warmup_time_s=0))
    (outcome,) = Runner(store, [local()], BenchmarkScenario(), Quiet(), HostCpu(lock)).run(jobs)
    assert outcome.benchmark.complete, outcome.error


@pytest.mark.parametrize("shared", [True, False], ids=["one-lock", "control-two-locks"])
def test_a_local_profile_never_overlaps_a_local_benchmark(tmp_path: Path, shared: bool) -> None:
    """With one lock the two agents run one after the other; the control, with a lock each, shows
    that the watch does see two agents at once when nothing makes them take turns."""
    locks = (tmp_path / "cpu.lock", tmp_path / ("cpu.lock" if shared else "other.lock"))
    errors: list[BaseException] = []

    def guarded(fn: Any, lock: Path) -> None:
        try:
            fn(tmp_path, lock)
        except BaseException as exc:  # surfaced in the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(fn, lock))
               for fn, lock in zip((_benchmark_job, _profile_job), locks, strict=True)]
    with AgentWatch(str(tmp_path)) as watch:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
    assert not errors, errors
    assert watch.seen == {"run", "profile"}  # both agents were seen running
    assert watch.overlapped is not shared


def test_harness_processes_take_turns_on_the_host_cpu(tmp_path: Path) -> None:
    """`harness run` and `harness analyze --profile` started side by side, as two users' shells
    would: one waits for the other (the lock file lives in their shared TMPDIR)."""
    env = dict(os.environ, TMPDIR=str(tmp_path), COLUMNS="200")
    bench, prof = tmp_path / "bench.tflite", tmp_path / "prof.tflite"
    shutil.copy(KWS, bench)
    shutil.copy(DIGITS, prof)
    targets = str(targets_file(tmp_path))
    commands = [["run", "--targets", targets, "--target", "local", "--model", str(bench), "--duration", "1",
                 "--warmup-time", "0", "--blocks", "4", "--results", "r"],
                ["analyze", str(prof), "--targets", targets, "--profile", "local", "--rounds", "40",
                 "--results", "r"]]
    with AgentWatch(str(tmp_path)) as watch:
        procs = [subprocess.Popen([sys.executable, "-m", "harness", *c], cwd=tmp_path, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in commands]
        outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert watch.seen == {"run", "profile"} and not watch.overlapped
    assert any("waiting for the host CPU" in err for _, err in outs)  # the one that waited said so


# --- runs of several kinds in one store ---------------------------------------------------------

def _benchmark_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["run", "--targets", str(targets_file(tmp_path)), "--model", str(KWS), *QUICK,
                 "--results", str(tmp_path / "results"), "--json"]) == 0
    (obj,) = json_objects(capsys.readouterr().out)
    assert obj["kind"] == "benchmark"
    return str(obj["run_id"])


def test_latest_is_the_latest_run_of_the_kind_a_command_reads(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    bench_id = _benchmark_run(tmp_path, capsys)
    time.sleep(0.05)  # distinct mtimes, the profile run the newer
    assert main(["analyze", str(DIGITS), "--targets", str(targets_file(tmp_path)), "--profile", "local",
                 "--rounds", "2", "--results", str(results), "--json"]) == 0
    profile_id = json.loads(capsys.readouterr().out)["profile"]["run_id"]
    assert main(["show", "--results", str(results), "--json"]) == 0
    (shown,) = json_objects(capsys.readouterr().out)
    assert (shown["kind"], shown["run_id"], shown["model"]) == ("benchmark", bench_id, "ds_cnn_kws.tflite")
    assert main(["show", "--results", str(results)]) == 0
    assert "ds_cnn_kws.tflite" in capsys.readouterr().out
    assert main(["show", profile_id, "--results", str(results)]) == 0
    assert "heaviest" in capsys.readouterr().out
    # --predict-from latest reads the benchmark run, not the newer profile run
    assert main(["analyze", str(KWS), "--predict-from", "latest", "--results", str(results), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "analysis" and data["prediction"]["throughputs"]


def test_a_run_stored_before_kinds_is_a_benchmark_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Schema version 1 had no `kind`: such a run is still shown, and is the latest benchmark run."""
    results = tmp_path / "results"
    bench_id = _benchmark_run(tmp_path, capsys)
    old = results / "20200101-000000-0001"
    shutil.copytree(results / bench_id, old)
    meta = json.loads((old / "run.json").read_text())
    del meta["kind"]
    (old / "run.json").write_text(json.dumps({**meta, "schema_version": 1, "run_id": old.name}))
    for record in (old / "benchmarks").glob("*.jsonl"):
        lines = lines_of(record)
        del lines[0]["kind"]
        lines[0]["schema_version"] = 1
        record.write_text("".join(json.dumps(line) + "\n" for line in lines))
    os.utime(old / "run.json", (time.time() + 5, time.time() + 5))  # the newest run
    assert main(["show", "--results", str(results), "--json"]) == 0
    (shown,) = json_objects(capsys.readouterr().out)
    assert (shown["kind"], shown["run_id"], shown["complete"]) == ("benchmark", old.name, True)


def test_every_json_object_says_its_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(DIGITS), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "analysis"
    assert main(["doctor", "--targets", str(targets_file(tmp_path)), "--json"]) in (0, 1)
    assert {o["kind"] for o in json_objects(capsys.readouterr().out)} == {"doctor"}
    _benchmark_run(tmp_path, capsys)  # asserts "kind": "benchmark"
    summary = (tmp_path / "results").glob("*/summary.jsonl")
    assert {json.loads(line)["kind"] for f in summary for line in f.read_text().splitlines()} == {"benchmark"}


def test_a_profile_job_header_holds_what_the_maths_needs(tmp_path: Path) -> None:
    """A stored profile is recomputed without the model file: its header has each op's FLOPs."""
    store = RunStore(tmp_path, kind="profile")
    ops = tuple({"index": op.index, "type": op.type, "flops": op.flops} for op in analyze(DIGITS).ops)
    writer = store.open_profile(ProfileJob("local", DIGITS, "sha", ProfilePlan(), (ROOT / "a.tflite",), ops))
    writer.end(complete=False)
    (header, end) = lines_of(writer.path)
    assert header["ops"] == list(ops) and header["prefixes"] == ["a.tflite"] and header["plan"]["clock"] == "wall"
    with pytest.raises(ValueError, match="a benchmark record in a profile run"):
        store.open_benchmark(plan_jobs([local()], [DIGITS], [1], Plan())[0][0])
