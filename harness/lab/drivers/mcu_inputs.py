"""The inputs of a job on a serial board: read as the Linux agent reads them, staged on the device.

An inputs file means the same on every board kind: ``read_samples`` is the Linux agent's own
``inputs_from_file`` (arrays matched by input name, then ``x`` for a one-input model, then file
order; N stacked samples), run on the host, and its errors are the agent's ``bad_inputs`` errors.

A Linux board reads sample ``i mod S`` in iteration ``i``. A serial device holds one staged input
set (SERIAL_PROTOCOL.md 3.6), and the host can change it only between RUN batches, never inside a
timed iteration. So the host splits the ``n`` iterations of each mode into ``S`` contiguous runs of
equal length (``sample_runs``): iteration ``i`` of a mode (iteration ``k`` of block ``b`` is
``i = b * per_block + k``, in both modes) uses sample ``i * S // n``. Every sample is used, as often
as on a Linux board (within one), both halves of a block see the same samples, and a sample change
is a batch boundary where the host sends the sample with SET_INPUT. With ``S > n`` the first ``n``
samples are used, one iteration each, as on Linux. The first Invoke and the warm-up use sample 0,
the settle iterations of a block the block's first sample. Random inputs are drawn on the device
once (RANDOM_INPUT, seeded).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from device_agents.linux.tflite_agent import AgentFailure, inputs_from_file
from harness.errors import AgentError
from harness.lab.drivers.linux import HINTS

log = logging.getLogger(__name__)

SET_INPUT_HEADER = 5  # u8 index, u32 offset (SERIAL_PROTOCOL.md 3.6)

# (payload, what) -> None: one acknowledged SET_INPUT request
SendInput = Callable[[bytes, str], None]


def read_samples(path: Path, tensors: list[dict[str, Any]], target: str) -> list[list[np.ndarray]]:
    """The samples of an inputs file for the model inputs ``tensors`` (GET_TENSOR replies, in order)."""
    details = [{"name": t["name"], "shape": t["shape"], "dtype": t["dtype_name"]} for t in tensors]
    try:
        samples = inputs_from_file(str(path), details, np)
    except AgentFailure as exc:
        raise AgentError(exc.message, code=exc.code, target=target, hint=HINTS["bad_inputs"]) from exc
    return [[np.ascontiguousarray(a) for a in sample] for sample in samples]


def set_input_payloads(index: int, data: bytes, max_payload: int) -> list[bytes]:
    """The SET_INPUT payloads that write ``data`` into input ``index``, each within ``max_payload``."""
    step = max_payload - SET_INPUT_HEADER
    return [struct.pack("<BI", index, offset) + data[offset:offset + step] for offset in range(0, len(data), step)]


def sample_of(i: int, iterations: int, samples: int) -> int:
    """The sample that iteration ``i`` (0-based, of ``iterations`` per mode) uses on a serial board."""
    return i * max(1, min(samples, iterations)) // max(1, iterations)


def sample_runs(start: int, count: int, iterations: int, samples: int) -> list[tuple[int, int]]:
    """``(sample, n)`` runs that cover iterations ``start .. start + count - 1`` of a mode, in order."""
    m = max(1, min(samples, iterations))
    runs: list[tuple[int, int]] = []
    i, end = start, start + count
    while i < end:
        sample = sample_of(i, iterations, samples)
        following = -(-(sample + 1) * iterations // m)  # the first iteration of the next sample
        n = min(end, max(following, i + 1)) - i
        runs.append((sample, n))
        i += n
    return runs


class DeviceInputs:
    """What is staged on the device for one job, and how to stage another sample."""

    def __init__(self, label: str, samples: list[list[np.ndarray]] | None, send: SendInput,
                 max_payload: int) -> None:
        self.label = label  # "random", or the inputs file's name
        self.samples = samples  # None: random inputs, drawn on the device
        self.send = send
        self.max_payload = max_payload
        self.staged: int | None = None
        self.stagings = 0

    @property
    def count(self) -> int:
        return len(self.samples) if self.samples is not None else 1

    def runs(self, start: int, count: int, iterations: int) -> list[tuple[int, int]]:
        return sample_runs(start, count, iterations, self.count)

    def sample_of(self, i: int, iterations: int) -> int:
        return sample_of(i, iterations, self.count)

    def stage(self, sample: int) -> None:
        """Make ``sample`` the device's staged input set (nothing to send if it already is)."""
        if self.samples is None or sample == self.staged:
            return
        for index, array in enumerate(self.samples[sample]):
            for payload in set_input_payloads(index, array.tobytes(), self.max_payload):
                self.send(payload, f"SET_INPUT {index} of sample {sample} from {self.label}")
        self.staged = sample
        self.stagings += 1
