"""Energy per inference, inferences per second per dollar, and the duty cycle at a required rate:
pure arithmetic on what was measured on the board or declared in targets.toml.

Power comes from one of two sources, and every figure says which:

- ``measured``: the power pass (PROTOCOL.md, power mode) of a target with a power reader
  (targets.toml ``power``). The active power is the mean of the active window's samples (the board
  Invoking back to back), the idle power the mean of the idle window's (the agent asleep). The
  samples are taken at a fixed interval, so their plain mean is the time average.
- ``declared``: targets.toml ``power_w`` (active) and ``idle_power_w``.

Measured wins when its active window has samples. The two are never mixed: a measured active
power less a declared idle one would be the difference of two instruments.

- Energy per inference (mJ) = (active − idle) × median Invoke: what an inference costs above the
  board's idle draw; with the idle power unknown, active × median Invoke (the whole draw, idle
  included). Per loop iteration: the same power × the median loop with Invoke (as if the rest of
  the loop drew what Invoke does: its own draw is not measured apart). W × ns = nJ; 1e6 nJ = 1 mJ.
- Inferences per second per dollar = loop iterations per second with Invoke (the application's
  own rate, one inference per iteration: ``BenchmarkSummary.throughput_ips``) / ``price_usd``.
- Duty cycle at a required rate R (inferences per second): busy = R × median loop with Invoke,
  the fraction of each second the board works; if it sleeps the rest of the time at its idle
  power, its average power is busy × active + (1 − busy) × idle (unknown without an idle power).
  busy ≥ 1: the rate is not sustainable, the board cannot keep up, and no average exists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.results.benchmark import PowerRecord

MEASURED = "measured"
DECLARED = "declared"


@dataclass(frozen=True)
class PowerWindow:
    """One window of the power pass: the watts of its good samples, in the order taken."""

    name: str  # "idle" | "active"
    watts: tuple[float, ...]
    failed: int = 0  # readings that were not samples (on the board, or no number here)
    invokes: int | None = None  # active: Invokes that ended inside the window

    @property
    def mean_w(self) -> float | None:
        return math.fsum(self.watts) / len(self.watts) if self.watts else None


def windows(record: PowerRecord) -> dict[str, PowerWindow]:
    """The windows of a stored power pass by name. A sample whose watts are not a finite number
    counts as failed: a damaged line must not pass for a reading."""
    out: dict[str, PowerWindow] = {}
    for msg in record.windows:
        good: list[float] = []
        bad = 0
        for sample in msg.get("samples") or ():
            w = sample.get("watts") if isinstance(sample, dict) else None
            if isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w):
                good.append(float(w))
            else:
                bad += 1
        name = str(msg.get("window"))
        invokes = msg.get("invokes")
        out[name] = PowerWindow(name, tuple(good), int(msg.get("failed") or 0) + bad,
                                invokes if isinstance(invokes, int) else None)
    return out


def millijoules(watts: float, ns: float | None) -> float | None:
    """Energy of ``watts`` over ``ns`` nanoseconds, in mJ (W × ns = nJ)."""
    return None if ns is None else watts * ns / 1e6


@dataclass(frozen=True)
class Energy:
    """The power of a board running a model, and what one inference and one loop iteration cost."""

    source: str  # MEASURED | DECLARED
    active_w: float
    idle_w: float | None
    per_inference_mj: float | None  # None without a median Invoke
    per_loop_mj: float | None
    reader: str | None = None  # measured: the power reader (ina3221, rpi5-pmic)
    total: str | None = None  # measured: how the reader formed the total (VDD_IN, "sum of rails")
    idle_samples: int = 0
    active_samples: int = 0
    failed: int = 0  # measured: readings that were not samples, both windows

    @property
    def net_w(self) -> float:
        """The power an inference adds: active less idle where idle is known, else all of it."""
        return self.active_w - self.idle_w if self.idle_w is not None else self.active_w

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "active_w": self.active_w, "idle_w": self.idle_w,
                "per_inference_mj": self.per_inference_mj, "per_loop_mj": self.per_loop_mj,
                "samples": ({"idle": self.idle_samples, "active": self.active_samples, "failed": self.failed}
                            if self.source == MEASURED else None),
                "reader": self.reader, "total": self.total}


def _energy(source: str, active_w: float, idle_w: float | None, invoke_ns: float | None,
            loop_ns: float | None, **measured: Any) -> Energy:
    net = active_w - idle_w if idle_w is not None else active_w
    return Energy(source, active_w, idle_w, millijoules(net, invoke_ns), millijoules(net, loop_ns), **measured)


def measured(record: PowerRecord | None, invoke_ns: float | None, loop_ns: float | None) -> Energy | None:
    """Energy from a stored power pass; None without one or without active samples."""
    if record is None:
        return None
    found = windows(record)
    active = found.get("active")
    if active is None or active.mean_w is None:
        return None
    idle = found.get("idle")
    idle_w = idle.mean_w if idle is not None else None
    return _energy(MEASURED, active.mean_w, idle_w, invoke_ns, loop_ns,
                   reader=record.power_set.get("source"), total=record.source.get("total"),
                   idle_samples=len(idle.watts) if idle else 0, active_samples=len(active.watts),
                   failed=sum(w.failed for w in found.values()))


def declared(facts: Mapping[str, Any], invoke_ns: float | None, loop_ns: float | None) -> Energy | None:
    """Energy from targets.toml's power_w and idle_power_w; None without power_w."""
    active, idle = facts.get("power_w"), facts.get("idle_power_w")
    if not isinstance(active, int | float):
        return None
    return _energy(DECLARED, float(active), float(idle) if isinstance(idle, int | float) else None,
                   invoke_ns, loop_ns)


def energy(record: PowerRecord | None, facts: Mapping[str, Any], invoke_ns: float | None,
           loop_ns: float | None) -> Energy | None:
    """Measured energy where the power pass has active samples, else declared, else None."""
    return measured(record, invoke_ns, loop_ns) or declared(facts, invoke_ns, loop_ns)


@dataclass(frozen=True)
class Cost:
    price_usd: float
    ips_per_usd: float | None  # None without a loop rate

    def to_json(self) -> dict[str, Any]:
        return {"price_usd": self.price_usd, "ips_per_usd": self.ips_per_usd}


def cost(facts: Mapping[str, Any], ips: float | None) -> Cost | None:
    """Inferences per second per dollar; None without a price."""
    price = facts.get("price_usd")
    if not isinstance(price, int | float) or price <= 0:
        return None
    return Cost(float(price), ips / price if ips is not None else None)


@dataclass(frozen=True)
class Duty:
    """The board serving ``rate_hz`` inferences a second, sleeping between them."""

    rate_hz: float
    busy_fraction: float
    average_w: float | None  # None when not sustainable, or without an active and an idle power

    @property
    def sustainable(self) -> bool:
        return self.busy_fraction < 1

    def to_json(self) -> dict[str, Any]:
        return {"rate_hz": self.rate_hz, "busy_fraction": self.busy_fraction, "average_w": self.average_w,
                "sustainable": self.sustainable}


def duty(rate_hz: float | None, loop_ns: float | None, power: Energy | None) -> Duty | None:
    """The duty cycle at ``rate_hz``; None without a rate or a loop time."""
    if rate_hz is None or loop_ns is None:
        return None
    busy = rate_hz * loop_ns / 1e9
    average = None
    if busy < 1 and power is not None and power.idle_w is not None:
        average = busy * power.active_w + (1 - busy) * power.idle_w
    return Duty(rate_hz, busy, average)
