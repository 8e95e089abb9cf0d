"""labgrid places as targets: acquire (or reserve) a place, turn its resources into a target, release it.

A target of ``kind = "labgrid"`` (harness.config.LabgridOptions) names a place of a labgrid
coordinator (``HOST:PORT``: the target's ``coordinator``, else ``$LG_COORDINATOR``, else
127.0.0.1:20408), or a pool of them by tags. Holding a place (``hold``):

- ``reserve = false``: the place is acquired at once; held by someone else, harness waits for it
  up to ``wait_s`` (``--wait``), then stops with one line naming who holds it;
- ``reserve = true``: a reservation (filter ``name=PLACE``) waits its turn in the coordinator's
  queue, polled every second (a reservation nobody polls expires after 60 s), up to ``wait_s``
  (default 300 s), then the place is acquired;
- a place this user already acquired on this host (``labgrid-client acquire`` by hand) is used as
  it is and left acquired: harness releases only what it acquired.

The place's resources become a plain target (``resolve``), so the ssh and serial transports and
the drivers run exactly as for a target of those kinds:

    NetworkService     {address, username, port}       -> kind "ssh": host, user, port
    NetworkSerialPort  {host, port, speed, protocol}   -> kind "serial": rfc2217://HOST:PORT?ign_set_control
                                                          (protocol "rfc2217", what an exporter's ser2net
                                                          serves), socket://HOST:PORT (protocol "raw")

``ign_set_control``: ser2net cannot set modem lines on every port (a pty, some USB bridges) and
harness uses none, so the client does not wait for the answer. A NetworkService with a password is
refused: harness logs in with keys only.

labgrid's client is asyncio; harness's workers are threads. Each ``Session`` is one of labgrid's
``ClientSession`` on an event loop in a thread of its own (one for the process: gRPC's asyncio
layer allows no more), and uses only its gRPC stub and its mirrors of the places and resources,
never the client's commands, which read argparse objects.
labgrid is imported here, lazily, so harness without the ``lab`` extra runs every other kind.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from harness.config import DEFAULT_COORDINATOR, LabgridOptions
from harness.errors import ConfigError, TransportError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # reaching the coordinator; its answers take milliseconds
CALL_TIMEOUT_S = 10.0
POLL_S = 0.25  # how often a wait looks at the place again (the session mirrors it: no request)
RESERVATION_POLL_S = 1.0  # labgrid-client's own interval; each poll keeps the reservation alive
RESOURCE_WAIT_S = 10.0  # an exporter publishes its ser2net port a moment after the acquire
T = TypeVar("T")


def address_of(opts: LabgridOptions) -> str:
    return opts.coordinator or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR


class _LabgridLog(logging.Filter):
    """labgrid's client logs to the root logger ("coordinator is unavailable: ..."); what it says
    reaches the user in harness's own one-line errors, so its records go to this module's logger
    at debug level (shown with -vv) instead, the last one kept for the error that follows it."""

    last = ""

    def filter(self, record: logging.LogRecord) -> bool:
        if f"{os.sep}labgrid{os.sep}" not in record.pathname:
            return True
        self.last = record.getMessage()
        log.debug("labgrid: %s", self.last)
        return False


_LABGRID_LOG = _LabgridLog()


def _client() -> tuple[Any, Any]:
    """labgrid's client module and protobuf messages, or a ConfigError naming the extra."""
    # harness starts programs (emulators, ser2net) while gRPC runs: gRPC's fork handler would
    # only race with them (labgrid's own tests turn it off for the same reason).
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
    try:
        from labgrid.remote import client
        from labgrid.remote.generated import labgrid_coordinator_pb2
    except ImportError as exc:
        raise ConfigError(f"labgrid targets need labgrid, which does not import here ({exc})",
                          hint="pip install -e '.[lab]' (labgrid 25 or later)") from exc
    if _LABGRID_LOG not in logging.getLogger().filters:
        logging.getLogger().addFilter(_LABGRID_LOG)
    return client, labgrid_coordinator_pb2


@dataclass(frozen=True)
class PlaceState:
    """A place as the coordinator last said: ``acquired`` is "host/user" or None."""

    name: str
    tags: dict[str, str]
    acquired: str | None
    reservation: str | None
    changed: float
    matches: tuple[str, ...]

    def holder(self) -> str:
        host, _, user = (self.acquired or "").partition("/")
        since = datetime.fromtimestamp(self.changed).strftime("%Y-%m-%d %H:%M")
        return f"{user or '?'} on {host or '?'} (since {since})"


# gRPC's asyncio layer runs one event loop per process, and channels to one address share their
# connection, which the coordinator takes for one client: so every Session of this process runs on
# one event loop (in a thread of its own, started with the first) and shares one labgrid client
# session per coordinator. It lives until the process exits: a client stopped and started again at
# once would reach the coordinator before it forgot the old one, on the same connection.
_LOOP: list[asyncio.AbstractEventLoop] = []
_CLIENTS: dict[str, Any] = {}  # coordinator address -> labgrid ClientSession
_LOCK = threading.Lock()


def _shared_loop() -> asyncio.AbstractEventLoop:
    if not _LOOP:
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="labgrid", daemon=True).start()
        _LOOP.append(loop)
        atexit.register(_stop_clients)
    return _LOOP[0]


def _stop_clients() -> None:
    """At exit: end each client's stream and channel, so the coordinator sees it leave."""
    async def stop(session: Any) -> None:
        await session.stop()
        await session.close()

    for session in list(_CLIENTS.values()):
        with contextlib.suppress(Exception):  # the process is ending: nothing left to tell
            asyncio.run_coroutine_threadsafe(stop(session), _LOOP[0]).result(2.0)


class Session:
    """A client of one coordinator (labgrid's ClientSession, shared by the process's Sessions)."""

    def __init__(self, address: str, who: str) -> None:
        client, self.pb = _client()
        self.address, self.who = address, who
        self.me = f"{os.environ.get('LG_HOSTNAME') or _hostname()}/{os.environ.get('LG_USERNAME') or _user()}"
        with _LOCK:
            self._loop = _shared_loop()
            session = _CLIENTS.get(address)
            if session is None or session.stopping.is_set():  # none yet, or its coordinator went away
                session = _CLIENTS[address] = self._start(client)
        self._session = session

    def _start(self, client: Any) -> Any:
        from labgrid.util.proxy import proxymanager

        async def start() -> Any:
            grpc_address = proxymanager.get_grpc_address(self.address, default_port=20408)
            session = client.ClientSession(grpc_address, self._loop)
            await session.start()
            return session

        future = asyncio.run_coroutine_threadsafe(start(), self._loop)
        try:
            return future.result(CONNECT_TIMEOUT_S)
        except Exception as exc:  # labgrid's ServerError, grpc's errors, a timeout: all "cannot reach"
            future.cancel()
            why = str(exc).removeprefix("Error: ") or f"no answer within {CONNECT_TIMEOUT_S:g} s"
            said = _LABGRID_LOG.last.partition("unavailable: ")[2]
            why += f" ({said})" if said else ""
            raise TransportError(f"cannot reach the labgrid coordinator at {self.address}: {why}", target=self.who,
                                 hint="start labgrid-coordinator there, or set coordinator = \"HOST:PORT\" "
                                      "in targets.toml (or LG_COORDINATOR)", code="coordinator") from exc

    def call(self, make: Callable[[], Coroutine[Any, Any, T]], what: str) -> T:
        """Run a coroutine on the session's loop; gRPC errors become one TransportError."""
        future = asyncio.run_coroutine_threadsafe(make(), self._loop)
        try:
            return future.result(CALL_TIMEOUT_S)
        except TimeoutError as exc:
            future.cancel()
            raise TransportError(f"the labgrid coordinator at {self.address} did not answer {what} within "
                                 f"{CALL_TIMEOUT_S:g} s", target=self.who, code="coordinator") from exc
        except Exception as exc:
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise TransportError(f"labgrid coordinator at {self.address}: {what} failed: {details}",
                                 target=self.who, code="coordinator") from exc

    async def _rpc(self, method: str, request: Any) -> Any:
        reply = await getattr(self._session.stub, method)(request)
        await self._session.sync_with_coordinator()  # our mirror of the places has caught up
        return reply

    def rpc(self, method: str, request: Any) -> Any:
        return self.call(lambda: self._rpc(method, request), method)

    def places(self) -> dict[str, PlaceState]:
        async def snapshot() -> dict[str, PlaceState]:
            return {name: PlaceState(name, dict(p.tags), p.acquired, p.reservation, p.changed,
                                     tuple(str(m) for m in p.matches))
                    for name, p in self._session.places.items()}

        return self.call(snapshot, "the list of places")

    def place(self, name: str) -> PlaceState:
        places = self.places()
        if name not in places:
            known = ", ".join(sorted(places)) or "none"
            raise ConfigError(f"the labgrid coordinator at {self.address} has no place {name!r} (places: {known})",
                              target=self.who, code="no_place",
                              hint=f"labgrid-client -p {name} create, then add-match EXPORTER/GROUP/*")
        return places[name]

    def resources(self, name: str, *, acquired: bool = True) -> list[tuple[str, dict[str, Any], bool]]:
        """The place's resources, (class, parameters, available): those it acquired, or with
        ``acquired=False`` those its matches would acquire now."""
        async def collect() -> list[tuple[str, dict[str, Any], bool]]:
            place = self._session.places[name]
            if acquired:
                paths = [tuple(p) for p in place.acquired_resources]
            else:
                paths = [(exporter, group, entry.cls, rname)
                         for exporter, groups in self._session.resources.items()
                         for group, entries in groups.items() for rname, entry in entries.items()
                         if place.hasmatch((exporter, group, entry.cls, rname))]
            found = []
            for exporter, group, cls, rname in paths:
                entry = self._session.resources.get(exporter, {}).get(group, {}).get(rname)
                if entry is not None:
                    found.append((cls, {**entry.args, "extra": dict(entry.extra)}, bool(entry.avail)))
            return found

        return self.call(collect, "the place's resources")

    def close(self) -> None:
        """Done with the coordinator for now (its client stays, shared, until the process exits)."""


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _user() -> str:
    import getpass

    return getpass.getuser()
