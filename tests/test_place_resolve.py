"""Pure logic of labgrid targets, without labgrid: a place's resources to a target, pool queues."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.config import LabgridOptions, SerialOptions, SshOptions, Target, parse_targets
from harness.errors import ConfigError
from harness.lab.labgrid_place import resolve, serial_url
from harness.plan import Job, Plan
from harness.results.summary import BenchmarkSummary
from harness.scenarios.pool import Entry, JobQueue

PI = parse_targets('[targets.pi]\nkind = "labgrid"\nplace = "rpi4-03"\npython = "/opt/venv/bin/python"\n'
                   'description = "Raspberry Pi 4B"\nthreads = [1, 4]\n', "t.toml")["pi"]
SERVICE = {"address": "10.0.0.7", "username": "pi", "port": 2222, "extra": {"proxy_required": False}}


def test_a_network_service_becomes_an_ssh_target_with_the_labgrid_targets_keys() -> None:
    t = resolve(PI, "rpi4-03", {"NetworkService": SERVICE})
    assert t.kind == "ssh" and t.name == "pi" and t.threads == (1, 4) and t.description == "Raspberry Pi 4B"
    assert t.options == SshOptions(host="10.0.0.7", user="pi", port=2222, python="/opt/venv/bin/python")


def test_a_network_serial_port_becomes_a_serial_target_at_its_speed() -> None:
    mcu = replace(PI, options=replace(PI.options, use="serial"))
    line = {"host": "labhost", "port": 7001, "speed": 921600, "extra": {}}
    t = resolve(mcu, "rpi4-03", {"NetworkSerialPort": line})
    assert t.kind == "serial" and t.serial_board
    assert t.options == SerialOptions(port="rfc2217://labhost:7001?ign_set_control", baud=921600)
    assert isinstance(mcu.options, LabgridOptions)
    slow = replace(mcu, options=replace(mcu.options, baud=115200))  # baud in targets.toml wins
    assert resolve(slow, "rpi4-03", {"NetworkSerialPort": line}).options.baud == 115200  # type: ignore[union-attr]


def test_serial_urls() -> None:
    assert serial_url({"host": "h", "port": 5}) == "rfc2217://h:5?ign_set_control"
    assert serial_url({"host": "h", "port": 5, "protocol": "raw"}) == "socket://h:5"
    assert serial_url({"host": "fe80::1", "port": 5, "protocol": "raw"}) == "socket://[fe80::1]:5"


@pytest.mark.parametrize("resources, words", [
    ({}, ["place rpi4-03 has no available NetworkService", 'use = "serial"']),
    ({"NetworkService": {**SERVICE, "password": "raspberry"}}, ["place rpi4-03: its NetworkService has a password"]),
    ({"NetworkService": {**SERVICE, "extra": {"proxy_required": True, "proxy": "exp1"}}},
     ["only through the exporter host (exp1)"]),
])
def test_a_place_that_cannot_be_used_is_one_line_naming_it(resources: dict, words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        resolve(PI, "rpi4-03", resources)
    assert err.value.target == "pi" and "raspberry" not in str(err.value)
    for w in words:
        assert w in str(err.value)


def _queue(boards: int, jobs: int) -> JobQueue[Job]:
    pool = parse_targets('[targets.rpis]\nkind = "labgrid"\npool = "board=rpi4"\n', "t.toml")["rpis"]
    places = [Target(name=f"pi-{i}", kind="labgrid", options=LabgridOptions(place=f"pi-{i}")) for i in range(boards)]
    entries = [Entry(i, Job(target="rpis", model=Path(f"m{i}.tflite"), model_sha256="", threads=1, plan=Plan()))
               for i in range(jobs)]
    return JobQueue(pool, places, entries)


def test_a_pool_queue_moves_a_failed_boards_job_until_one_board_is_left() -> None:
    q = _queue(2, 3)
    a, b = q.boards
    first = q.take()
    assert first is not None and q.placed(first, a).target == "pi-0" and q.placed(first, a).pool == "rpis"
    assert q.give_up(first, a)  # pi-0 failed on it: back in the queue, first in line, naming pi-0
    again = q.take()
    assert again is not None and again.index == first.index and again.job.moved_from == ("pi-0",)
    assert not q.give_up(again, b)  # the last board keeps its jobs
    assert [e.index for e in iter(q.take, None)] == [1, 2]


def test_a_plain_target_never_gives_up_its_jobs() -> None:
    t = Target(name="pi", kind="labgrid", options=LabgridOptions(place="rpi4-03"))
    q: JobQueue[Job] = JobQueue(t, [t], [Entry(0, Job(target="pi", model=Path("m"), model_sha256="", threads=1,
                                                       plan=Plan()))])
    entry = q.take()
    assert entry is not None and q.pool is None and q.placed(entry, t) is entry.job and not q.give_up(entry, t)


def test_the_pool_line_names_boards_that_differ_and_keeps_them_apart() -> None:
    from harness.render.notes import pools
    from harness.results.summary import summarize
    from tests.test_render import bench

    def on(place: str, model: str, version: str, **kw: Any) -> BenchmarkSummary:
        b = bench(place, model)
        hello = {**b.hello, "runtime": {"name": "ai_edge_litert", "version": version}, "board": {"model": "Pi 4"}}
        return summarize(replace(b, hello=hello, pool="rpis", place=place, place_tags={"board": "rpi4"}, **kw))

    same = [on("pi-1", "a.tflite", "1.4"), on("pi-2", "b.tflite", "1.4", moved_from=("pi-3",))]
    line = [t.plain for t in pools(same)]
    assert line == ["pool rpis: 2 benchmarks on pi-1 (1), pi-2 (1); pi-3 failed: b t1 moved to pi-2; "
                    "2 identical boards: Pi 4 · ai_edge_litert 1.4"]
    differ = [t.plain for t in pools([*same, on("pi-4", "c.tflite", "1.2")])]
    assert "boards differ, so their rows are not one pool's: pi-1, pi-2: Pi 4 · ai_edge_litert 1.4; " \
           "pi-4: Pi 4 · ai_edge_litert 1.2" in differ[0]
    assert not list(pools([summarize(bench("local", "a.tflite"))]))  # no pool, no line
