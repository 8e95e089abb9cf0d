"""Stream records as read back from the result store: ``harness stream`` and ``harness soak`` runs
(files under ``streams/``, harness.results.store's layout). Beside the store, not in it, so that
the store knows nothing of a stream's messages: harness.results.stream interprets them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import MeasurementError
from harness.results.store import load_records, read_lines, warn_skipped
from harness.results.stream import StreamRecord, stream_from_lines


def read_stream(path: Path) -> StreamRecord:
    """One stream file; a line that cannot be read back, or not interpreted as the message it
    claims to be, is skipped and named in a warning."""
    header, numbered, skipped = read_lines(path)
    try:
        stream_from_lines(header, [])
    except (TypeError, ValueError) as exc:
        raise MeasurementError(f"{path}: its header line cannot be read ({exc})",
                               hint="remove it from the run directory, or restore it from a backup") from exc
    kept: list[dict[str, Any]] = []
    for number, msg in numbered:
        try:
            stream_from_lines(header, [msg])
        except (MeasurementError, KeyError, TypeError, ValueError, AttributeError):
            skipped.append(number)
        else:
            kept.append(msg)
    warn_skipped(path, sorted(skipped), len(kept))
    return stream_from_lines(header, kept)


def load_streams(path: Path) -> tuple[dict[str, Any], list[StreamRecord]]:
    """run.json and every stream of the run in directory ``path``, in run order (as harness.results.store.load_run)."""
    return load_records(path, "stream", read_stream)
