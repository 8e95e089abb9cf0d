"""The emulated MCU's UART: a tty whose bytes move no faster than a real line at the set baud rate.

A pty carries data at memory speed whatever baud is set: without pacing, upload times would be
fiction. Every byte read or written is paced at 10 bits per byte (8N1). Runs on Python >= 3.8;
never imports harness.
"""

import os
import select
import time

from device_agents.wire import serial_frames as sf

WRITE_SLICE = 256  # bytes per paced write, so a long reply trickles out like a UART's


class PacedLine:
    """A tty whose bytes move no faster than a UART at ``baud`` (8N1)."""

    def __init__(self, fd: int, baud: int) -> None:
        self.fd = fd
        self.byte_s = sf.BITS_PER_BYTE / float(baud)
        self.rx_clock = 0.0
        self.tx_clock = 0.0

    def read(self, timeout: float) -> bytes:
        """Bytes received within ``timeout`` s (b"" if none), released at the line rate."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return b""
        try:
            data = os.read(self.fd, 8192)
        except OSError:  # EIO: no process holds the other end
            time.sleep(min(timeout, 0.05))
            return b""
        self.rx_clock = max(self.rx_clock, time.monotonic()) + len(data) * self.byte_s
        _sleep_until(self.rx_clock)
        return data

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            piece, view = view[:WRITE_SLICE], view[WRITE_SLICE:]
            self.tx_clock = max(self.tx_clock, time.monotonic()) + len(piece) * self.byte_s
            _sleep_until(self.tx_clock)
            while piece:
                try:
                    n = os.write(self.fd, piece)
                except BlockingIOError:
                    select.select([], [self.fd], [], 0.05)
                    continue
                piece = piece[n:]


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)
