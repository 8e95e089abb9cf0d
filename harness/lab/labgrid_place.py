"""Holding a labgrid place for a run, and the plain target its resources make (see harness.lab.labgrid).

``hold(target, cancel)`` acquires the place (waiting or reserving as the target says) and returns
a ``Lease``: the ssh or serial target its resources resolve to, the place's tags for the results,
and ``release()``, which the driver calls when it closes (at the end, on error, and after Ctrl-C or
SIGTERM, which stop the runner's workers). ``pool_places`` lists the free places of a pool.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from harness.config import LabgridOptions, SerialOptions, Target
from harness.errors import ConfigError, HarnessError, TransportError
from harness.lab.labgrid import POLL_S, RESERVATION_POLL_S, RESOURCE_WAIT_S, PlaceState, Session, address_of

log = logging.getLogger(__name__)

# labgrid's ReservationState, by its number in the protocol; the place is ours once allocated
STATES = ("waiting", "allocated", "acquired", "expired", "invalid")
RESERVED = ("allocated", "acquired")


@dataclass
class Lease:
    """A place held for one target; ``target`` is the ssh or serial target its resources make."""

    session: Session
    place: str
    tags: dict[str, str]
    target: Target
    owned: bool  # False: this user had acquired it already; it stays acquired after the run
    token: str | None = None
    released: bool = field(default=False, init=False)

    def message(self) -> dict[str, Any]:
        """The host's line in each record: which place ran the benchmark, with its tags."""
        return {"type": "place", "place": self.place, "tags": dict(self.tags), "host_measured": True}

    def release(self) -> None:
        """Release the place (if harness acquired it) and end the session; logs, never raises."""
        if self.released:
            return
        self.released = True
        try:
            if self.owned:
                self.session.rpc("ReleasePlace", self.session.pb.ReleasePlaceRequest(placename=self.place))
                log.info("%s: released place %s", self.target.name, self.place)
            if self.token:
                _cancel_reservation(self.session, self.token)
        except HarnessError as exc:
            log.warning("%s: releasing place %s failed: %s (fix: labgrid-client -p %s release)",
                        self.target.name, self.place, exc.message, self.place)
        finally:
            self.session.close()


def _options(target: Target) -> LabgridOptions:
    assert isinstance(target.options, LabgridOptions)
    return target.options


def hold(target: Target, cancel: threading.Event) -> Lease:
    """Acquire the target's place (or reserve it and wait), resolve it; every failure one HarnessError."""
    opts = _options(target)
    assert opts.place is not None, "a pool is held place by place (pool_places)"
    session = Session(address_of(opts), target.name)
    try:
        owned, token = _acquire(session, target.name, opts, cancel)
        lease = Lease(session, opts.place, session.place(opts.place).tags, target, owned, token)
    except BaseException:
        session.close()
        raise
    try:
        lease.target = resolve(target, opts.place, _resources(session, opts))
    except BaseException:
        lease.release()
        raise
    log.info("%s: holding place %s (%s)", target.name, opts.place, lease.target.kind)
    return lease


def _acquire(session: Session, who: str, opts: LabgridOptions, cancel: threading.Event) -> tuple[bool, str | None]:
    """(harness acquired it, reservation token); waits up to ``opts.wait_limit_s``."""
    name = str(opts.place)
    state = session.place(name)
    if state.acquired == session.me:
        log.warning("%s: place %s is acquired by you already: used as it is, and left acquired", who, name)
        return False, None
    started = time.monotonic()
    token = _reserve(session, name) if opts.reserve else None
    try:
        reserved = token is None
        next_poll = 0.0
        while True:
            if token is not None and time.monotonic() >= next_poll:
                reserved = _reservation_state(session, token) in RESERVED
                next_poll = time.monotonic() + RESERVATION_POLL_S
            state = session.place(name)
            free = reserved and state.acquired is None and state.reservation in (None, token)
            if free and _try_acquire(session, name):
                return True, token
            waited = time.monotonic() - started
            if waited >= opts.wait_limit_s:
                raise _held(who, state, opts, waited)
            if cancel.wait(POLL_S):
                raise TransportError(f"stopped while waiting for place {name}", target=who, code="interrupted")
    except BaseException:
        if token is not None:
            _cancel_reservation(session, token)
        raise


def _try_acquire(session: Session, name: str) -> bool:
    """Acquire a place that looked free; False when another client took it first."""
    try:
        session.rpc("AcquirePlace", session.pb.AcquirePlaceRequest(placename=name))
    except TransportError as exc:
        if "already acquired" in exc.message:
            return False
        raise
    return True


def _held(who: str, state: PlaceState, opts: LabgridOptions, waited: float) -> TransportError:
    if state.acquired is None:  # free, but allocated to someone else's reservation
        what = f"place {state.name} is reserved for another user (reservation {state.reservation})"
    else:
        what = f"place {state.name} is held by {state.holder()}"
    if waited >= 1:
        what += f", still after waiting {waited:.0f} s"
    hint = (f"wait longer (--wait SECONDS), or ask them to release it (labgrid-client -p {state.name} release)"
            if waited >= 1 or opts.reserve else
            "wait for it with --wait SECONDS, or queue for it with --reserve (reserve = true)")
    return TransportError(what, target=who, hint=hint, code="place_held")


def _reserve(session: Session, name: str) -> str:
    pb = session.pb
    request = pb.CreateReservationRequest(filters={"main": pb.Reservation.Filter(filter={"name": name})}, prio=0.0)
    reply = session.rpc("CreateReservation", request)
    return str(reply.reservation.token)


def _reservation_state(session: Session, token: str) -> str:
    reply = session.rpc("PollReservation", session.pb.PollReservationRequest(token=token))
    state = int(reply.reservation.state)
    name = STATES[state] if 0 <= state < len(STATES) else f"state {state}"
    if name not in ("waiting", *RESERVED):
        raise TransportError(f"reservation {token} became {name} before its place was acquired",
                             target=session.who, hint="run again", code="reservation")
    return name


def _cancel_reservation(session: Session, token: str) -> None:
    try:
        session.rpc("CancelReservation", session.pb.CancelReservationRequest(token=token))
    except TransportError as exc:
        log.debug("%s: cancelling reservation %s: %s", session.who, token, exc.message)


def _resources(session: Session, opts: LabgridOptions) -> dict[str, dict[str, Any]]:
    """The acquired place's resources by class; waits (bounded) for a serial port's TCP port,
    which the exporter publishes once its ser2net runs."""
    name = str(opts.place)
    deadline = time.monotonic() + RESOURCE_WAIT_S
    while True:
        found = {cls: params for cls, params, avail in session.resources(name) if avail}
        serial = found.get("NetworkSerialPort")
        if opts.use != "serial" or (serial is not None and serial.get("port")) or time.monotonic() > deadline:
            return found
        time.sleep(POLL_S)


def resolve(target: Target, place: str, resources: dict[str, dict[str, Any]]) -> Target:
    """The ssh or serial target the place's resources make, with the labgrid target's other keys."""
    opts = _options(target)
    if opts.use == "ssh":
        service = resources.get("NetworkService")
        if service is None:
            raise ConfigError(f"place {place} has no available NetworkService (resources: "
                              f"{', '.join(sorted(resources)) or 'none'})", target=target.name,
                              hint="add a NetworkService to the place's exporter group and "
                                   "labgrid-client add-match it, or set use = \"serial\"")
        if service.get("password"):
            raise ConfigError(f"place {place}: its NetworkService has a password; harness logs in with keys only",
                              target=target.name, hint="remove password from the exporter's NetworkService and "
                                                       "install your public key on the board (ssh-copy-id)")
        _direct(target, place, service, "NetworkService")
        ssh = replace(opts.ssh, host=str(service["address"]), user=str(service["username"]),
                      port=int(service.get("port") or 22))
        return replace(target, kind="ssh", options=ssh)
    line = resources.get("NetworkSerialPort")
    if line is None or not line.get("port"):
        raise ConfigError(f"place {place} has no available NetworkSerialPort", target=target.name,
                          hint="export the board's serial port (USBSerialPort or RawSerialPort) in the place's "
                               "exporter group and labgrid-client add-match it, or set use = \"ssh\"")
    _direct(target, place, line, "NetworkSerialPort")
    serial = SerialOptions(port=serial_url(line), baud=opts.baud or int(line.get("speed") or 115200),
                           command_timeout_s=opts.command_timeout_s)
    return replace(target, kind="serial", options=serial)


def _direct(target: Target, place: str, params: dict[str, Any], cls: str) -> None:
    if (params.get("extra") or {}).get("proxy_required"):
        raise ConfigError(f"place {place}: its {cls} is reachable only through the exporter host "
                          f"({params['extra'].get('proxy')})", target=target.name,
                          hint="run harness where the board's network is reachable, or run the exporter "
                               "without --isolated")


def serial_url(params: dict[str, Any]) -> str:
    """A pyserial URL for a NetworkSerialPort: rfc2217 (what ser2net serves) or raw TCP."""
    host = str(params["host"])
    host = f"[{host}]" if ":" in host else host
    if params.get("protocol", "rfc2217") == "raw":
        return f"socket://{host}:{int(params['port'])}"
    return f"rfc2217://{host}:{int(params['port'])}?ign_set_control"


def pool_places(target: Target, cancel: threading.Event) -> list[Target]:
    """One place target per free place of the pool (waiting up to wait_s for the first)."""
    opts = _options(target)
    session = Session(address_of(opts), target.name)
    started = time.monotonic()
    try:
        while True:
            places = session.places()
            tagged = [p for p in places.values() if all(p.tags.get(k) == v for k, v in opts.pool)]
            if not tagged:
                raise ConfigError(f"no place of the labgrid coordinator at {session.address} has the tags "
                                  f"{opts.pool_name}", target=target.name,
                                  hint=f"labgrid-client -p PLACE set-tags {opts.pool_name.replace(',', ' ')}")
            free = sorted(p.name for p in tagged if p.acquired is None and p.reservation is None)
            if free:
                return [replace(target, name=name, options=replace(opts, place=name)) for name in free]
            if time.monotonic() - started >= opts.wait_limit_s:
                held = "; ".join(f"{p.name} by {p.holder()}" if p.acquired else f"{p.name} reserved"
                                 for p in sorted(tagged, key=lambda p: p.name))
                raise TransportError(f"every place of pool {opts.pool_name} is taken: {held}", target=target.name,
                                     hint="wait for one with --wait SECONDS", code="place_held")
            if cancel.wait(POLL_S):
                raise TransportError(f"stopped while waiting for a place of pool {opts.pool_name}",
                                     target=target.name, code="interrupted")
    finally:
        session.close()
