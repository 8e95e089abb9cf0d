"""`harness doctor` for labgrid targets: the coordinator, the place, who holds it, its resources.

In order: can the coordinator be reached; does the place exist (for a pool: which places have its
tags, and which are free); who holds it; are the resources the target uses there and available
(a NetworkService without a password for ``use = "ssh"``, a NetworkSerialPort for ``use =
"serial"``). A free place is then acquired for a moment, and the board behind it gets the checks
of its kind (harness.lab.doctor.diagnose: login, python, runtimes, ...); the place is released
right after. Findings name places and users, never addresses or passwords beyond what the
coordinator shows to everyone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from harness.config import LabgridOptions, Target
from harness.errors import HarnessError
from harness.lab.doctor import ERROR, OK, WARN, Diagnosis
from harness.lab.labgrid import PlaceState, Session, address_of


def diagnose_labgrid(target: Target, board: Callable[[Target], list[Diagnosis]]) -> list[Diagnosis]:
    """Findings for a labgrid target; ``board`` diagnoses the target its place resolves to."""
    opts = target.options
    assert isinstance(opts, LabgridOptions)
    try:
        session = Session(address_of(opts), target.name)
    except HarnessError as exc:
        return [Diagnosis("coordinator", ERROR, exc.message, exc.hint)]
    try:
        found = [Diagnosis("coordinator", OK, f"labgrid coordinator at {session.address} answers")]
        if opts.place is None:
            return found + _pool(session, opts)
        try:
            state = session.place(opts.place)
        except HarnessError as exc:
            return [*found, Diagnosis("place", ERROR, exc.message, exc.hint)]
        found += _holder(session, state)
        resources = _resources(session, opts, state.name)
        found += resources
        if state.acquired is None and state.reservation is None and all(f.level != ERROR for f in resources):
            found += _through_place(target, board)
        return found
    finally:
        session.close()


def _holder(session: Session, state: PlaceState) -> list[Diagnosis]:
    tags = ", ".join(f"{k}={v}" for k, v in sorted(state.tags.items())) or "no tags"
    if state.acquired == session.me:
        return [Diagnosis("place", OK, f"place {state.name} ({tags}) is acquired by you: harness uses it "
                                       "and leaves it acquired")]
    if state.acquired is not None:
        return [Diagnosis("place", WARN, f"place {state.name} ({tags}) is held by {state.holder()}",
                          "harness run --wait SECONDS (or --reserve) waits for it; or ask them to release it")]
    if state.reservation is not None:
        return [Diagnosis("place", WARN, f"place {state.name} ({tags}) is reserved ({state.reservation})",
                          "harness run --reserve queues for it")]
    return [Diagnosis("place", OK, f"place {state.name} ({tags}) is free")]


def _resources(session: Session, opts: LabgridOptions, name: str) -> list[Diagnosis]:
    found = session.resources(name, acquired=False)
    wanted = "NetworkService" if opts.use == "ssh" else "NetworkSerialPort"
    mine = [(params, avail) for cls, params, avail in found if cls == wanted]
    listed = ", ".join(sorted({cls for cls, _, _ in found})) or "none"
    if not mine:
        return [Diagnosis("resources", ERROR, f"place {name} has no {wanted} (it matches: {listed})",
                          f"export one in the board's exporter group and labgrid-client -p {name} add-match "
                          "EXPORTER/GROUP/*" + (', or set use = "serial"' if opts.use == "ssh" else ""))]
    params, avail = mine[0]
    if not avail:
        return [Diagnosis("resources", ERROR, f"place {name}: its {wanted} is not available (the exporter "
                                             "does not see it)", "check the board's cable and the exporter's log")]
    if opts.use == "ssh" and params.get("password"):
        return [Diagnosis("resources", ERROR, f"place {name}: its NetworkService has a password; harness logs "
                                             "in with keys only", "remove password from the exporter's "
                                                                  "NetworkService; install your key on the board")]
    return [Diagnosis("resources", OK, f"place {name} has {listed}; harness uses its {wanted}")]


def _through_place(target: Target, board: Callable[[Target], list[Diagnosis]]) -> list[Diagnosis]:
    """Acquire the place for a moment and diagnose the board behind it."""
    from harness.lab.labgrid_place import hold

    try:
        lease = hold(target, threading.Event())
    except HarnessError as exc:
        return [Diagnosis("place", ERROR, exc.message, exc.hint)]
    try:
        return board(lease.target)
    finally:
        lease.release()


def _pool(session: Session, opts: LabgridOptions) -> list[Diagnosis]:
    places = [p for p in session.places().values() if all(p.tags.get(k) == v for k, v in opts.pool)]
    if not places:
        return [Diagnosis("place", ERROR, f"no place has the tags {opts.pool_name}",
                          f"labgrid-client -p PLACE set-tags {opts.pool_name.replace(',', ' ')}")]
    states = [_state(p) for p in sorted(places, key=lambda p: p.name)]
    free = [p for p in places if p.acquired is None and p.reservation is None]
    level = OK if free else WARN
    what = f"pool {opts.pool_name}: {len(places)} places, {len(free)} free: {'; '.join(states)}"
    return [Diagnosis("place", level, what, None if free else "harness run --wait SECONDS waits for one")]


def _state(p: PlaceState) -> str:
    if p.acquired:
        return f"{p.name} held by {p.holder()}"
    return f"{p.name} reserved" if p.reservation else f"{p.name} free"

