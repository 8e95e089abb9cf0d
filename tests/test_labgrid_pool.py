"""A board pool: three identical places share nine jobs; one board dies half-way and its job
moves to the others (the runner's shared queue, harness.scenarios.pool), and the table says so.

The pool's places are the SSH lab's three sshd boards behind a real labgrid coordinator and
exporter (tests/labgridkit.py). Board pi-2 is killed (its sshd and every session of it) while
its second job streams samples; the sshd comes back after the test for the other tests.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness.config import parse_targets
from harness.plan import Plan
from harness.render.results import results_view
from harness.results.store import RunStore
from harness.scenarios.benchmark import BenchmarkScenario, Outcome, plan_jobs
from harness.scenarios.runner import Quiet, Runner
from tests.labgridkit import Farm, farm
from tests.serialkit import fc_model, write_model
from tests.sshd import Lab
from tests.sshfixtures import SshEnv, targets_toml

PLAN = Plan(warmup=2, warmup_time_s=0.0, iterations=30, min_iterations=10, blocks=2)


@pytest.fixture(scope="module")
def pool_farm(ssh_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    with farm(tmp_path_factory.mktemp("pool")) as f:
        f.exporter("rack", {f"pi-{i}": {"NetworkService": {"address": b.host, "port": b.port,
                                                           "username": ssh_lab.user.pw_name}}
                            for i, b in enumerate(ssh_lab.boards[:3], start=1)})
        for i in (1, 2, 3):
            f.add_place(f"pi-{i}", f"rack/pi-{i}/*", board="rpi4")
        f.add_place("other", "rack/pi-1/*", board="jetson")  # a place of another pool
        yield f


class KillOnSecondJob(Quiet):
    """Kills board ``victim`` (sshd and its sessions) when its second job sends samples."""

    def __init__(self, lab: Lab, victim: str) -> None:
        self.lab, self.victim = lab, victim
        self.started: list[str] = []
        self.killed = threading.Event()
        self._lock = threading.Lock()

    def job_started(self, job: Any) -> None:
        with self._lock:
            self.started.append(job.target)

    def job_message(self, job: Any, msg: dict[str, Any]) -> None:
        second = job.target == self.victim and self.started.count(self.victim) == 2
        if second and msg.get("type") == "samples" and not self.killed.is_set():
            self.killed.set()
            board = self.lab.boards[1]
            board.kill_sessions()  # (first: it finds the sessions through the listener)
            board.stop_listener()


def test_three_boards_share_nine_jobs_and_a_killed_boards_job_moves(
        pool_farm: Farm, ssh_env: SshEnv, ssh_lab: Lab, litert_python: Path, tmp_path: Path) -> None:
    models = [write_model(tmp_path, f"fc{i}.tflite", fc_model(k=16 + 8 * i, seed=i)) for i in range(3)]
    text = targets_toml({"rpi4s": {"kind": "labgrid", "pool": "board=rpi4", "coordinator": pool_farm.address,
                                   "python": str(litert_python), "connect_timeout_s": 3, "threads": [1, 2, 3],
                                   "workdir": ssh_lab.workdir(f"pool-{tmp_path.name}")}})
    pool = parse_targets(text, "targets.toml")["rpi4s"]
    jobs, refused = plan_jobs([pool], models, None, PLAN)
    assert len(jobs) == 9 and not refused
    store = RunStore(tmp_path / "results", kind="benchmark")
    store.start({"targets": {pool.name: pool.facts()}})
    observer = KillOnSecondJob(ssh_lab, "pi-2")
    runner: Runner[Any, Outcome] = Runner(store, [pool], BenchmarkScenario(), observer)
    try:
        outcomes = runner.run(jobs)
    finally:
        ssh_lab.boards[1].start()  # pi-2's sshd, back for the tests after this one
    assert observer.killed.is_set()
    assert {o.job.target for o in outcomes} == {"pi-1", "pi-2", "pi-3"}  # spread over the boards
    assert all(o.job.pool == "rpi4s" for o in outcomes)
    failed = [o for o in outcomes if o.error is not None]
    assert len(failed) == 1 and failed[0].job.target == "pi-2" and runner.moved(failed[0])
    assert failed[0].benchmark.loop("with")  # what it measured before the board died is kept
    done = [o for o in outcomes if o.error is None]
    cells = {(o.job.model.name, o.job.threads) for o in done}
    assert len(done) == 9 and len(cells) == 9 and all(o.benchmark.complete for o in done)
    moved = [o for o in done if o.job.moved_from]
    assert len(moved) == 1 and moved[0].job.moved_from == ("pi-2",) and moved[0].job.target != "pi-2"
    assert (moved[0].job.model, moved[0].job.threads) == (failed[0].job.model, failed[0].job.threads)
    assert observer.started.count("pi-2") == 2  # it took no job after it failed
    for o in done:
        s = o.summary.to_json(store.run_id)
        assert s["target"] == o.job.target and s["place"] == o.job.target and s["pool"] == "rpi4s"
        assert s["place_tags"] == {"board": "rpi4"}
    for name in ("pi-1", "pi-2", "pi-3"):
        assert pool_farm.place(name).acquired is None  # every board released, the dead one too
    view = results_view([o.summary for o in outcomes], None, False, 100)
    pool_lines = [str(x) for x in view if str(x).startswith("pool rpi4s")]
    assert len(pool_lines) == 1, view
    assert "pi-2 failed" in pool_lines[0] and f"moved to {moved[0].job.target}" in pool_lines[0], pool_lines
    assert "3 identical boards" in pool_lines[0]
    console = Console(width=100, record=True, file=io.StringIO())
    for item in view:
        console.print(item)
    shown = console.export_text()
    assert all(len(line) <= 100 for line in shown.splitlines()) and "pi-2" in shown
