"""Readers of targets.toml values (harness.config uses them): each returns the value as stored,
or raises ValueError saying what it must be; harness.config adds the file, the target and the key.

Sizes are bytes, or a string with a unit ("512KiB", "4 GB"); seconds are finite and positive;
labgrid tags are ``KEY=VALUE`` words as labgrid-client takes them (keys ``[a-z][a-z0-9_]+``).
"""

from __future__ import annotations

import math
import re
from typing import Any

from harness.errors import ConfigError

USES = ("ssh", "serial")  # what a labgrid target uses of its place
TAG = re.compile(r"[a-z][a-z0-9_]+")  # labgrid's tag keys; values are words of [a-z0-9_-]
TAG_VALUE = re.compile(r"[a-z0-9_][a-z0-9_-]*")

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def size_of(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
        if m and m.group(2).lower() in _UNITS:
            return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    return None


def parse_size(value: Any, *, where: str) -> int:
    """Bytes from an int or a string such as "512KiB" or "4 GB"."""
    size = size_of(value)
    if size is None:
        raise ConfigError(f"{where}: {value!r} is not a size", hint='write bytes or e.g. "512KiB", "4GB"')
    return size


# Readers of option values: the value as stored, or ValueError saying what it must be.
def read_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def read_flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def read_seconds(value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            or value <= 0):
        raise ValueError("must be a positive number of seconds")
    return float(value)


def read_positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("must be a positive integer")
    return value


def read_tcp_port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError("must be a TCP port, a whole number from 1 to 65535")
    return value


def read_address(value: Any) -> str:
    text = read_text(value)
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError('must be "HOST:PORT", e.g. "labhost:20408"')
    return text


def read_use(value: Any) -> str:
    if value not in USES:
        raise ValueError(f"must be one of {', '.join(USES)}")
    return str(value)


def read_wait(value: Any) -> float:
    if value == 0 and not isinstance(value, bool):
        return 0.0  # do not wait: refuse a held place at once
    return read_seconds(value)


def parse_tags(value: Any) -> tuple[tuple[str, str], ...]:
    """Tags that select places, from "board=rpi4,ram=4g" or a TOML table; ValueError if malformed."""
    if isinstance(value, str):
        pairs = [part.partition("=") for part in value.split(",") if part.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ValueError('must be tags as "KEY=VALUE[,KEY=VALUE]", e.g. "board=rpi4"')
        items = [(k.strip(), v.strip()) for k, _, v in pairs]
    elif isinstance(value, dict):
        items = list(value.items())
    else:
        raise ValueError('must be tags, "board=rpi4" or a table {board = "rpi4"}')
    if not items:
        raise ValueError("names no tag")
    for k, v in items:
        if not isinstance(v, str) or not TAG.fullmatch(k) or not TAG_VALUE.fullmatch(v):
            raise ValueError(f"has tag {k}={v}: keys are [a-z][a-z0-9_]+ and values words of [a-z0-9_-]")
    return tuple(sorted(items))


def read_bytes(value: Any) -> int:
    size = size_of(value)
    if size is None:
        raise ValueError('is not a size: write bytes or e.g. "512KiB", "4MiB"')
    if size <= 0:
        raise ValueError("must be more than 0 bytes")
    return size
