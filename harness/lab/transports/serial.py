"""Serial transport: a microcontroller's port, and the framed request/reply of SERIAL_PROTOCOL.md.

Port grammar (targets.toml ``port``): a device path (``/dev/ttyACM0``, ``/dev/pts/5``) or any
pyserial URL: ``rfc2217://HOST:PORT[?ign_set_control]`` (ser2net, a labgrid exporter),
``socket://HOST:PORT`` (a raw TCP bridge, QEMU's ``-serial tcp:``), ``loop://``. A board on
another lab host is therefore reached exactly like one on this host.

``FramedLink.request`` sends one request and returns its reply frame. Every wait has a
``time.monotonic()`` deadline; a request whose reply does not come is resent *identically* (same
SEQ, so the device answers a duplicate from memory and never executes it twice) at most
``RETRIES`` times; then TransportError names the target, the port and what to check.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections.abc import Callable
from typing import Any

import serial

from device_agents.wire import serial_frames as sf
from harness.errors import AgentError, TransportError

log = logging.getLogger(__name__)

RETRIES = 3  # resends after the first attempt: enough for a burst of noise, bounded for a dead link
SLACK_S = 0.5  # scheduling and USB latency on top of line time, per attempt
HOST_MAX_PAYLOAD = sf.MAX_PAYLOAD_V1
READ_SLICE_S = 0.05  # longest one blocking read; also how often a wait checks for cancel
WRITE_TIMEOUT_S = 5.0

# Device error codes as AgentError codes, with the fix to suggest.
ERROR_CODES: dict[int, tuple[str, str | None]] = {
    sf.E.MODEL_TOO_LARGE: ("model_too_large", "use a smaller or quantized model, or a board with more flash"),
    sf.E.HASH_MISMATCH: ("hash_mismatch", "the upload was corrupted; check the cable and the baud rate"),
    sf.E.BAD_MODEL: ("bad_model", "check that the file is a complete .tflite model"),
    sf.E.UNSUPPORTED_OP: ("unsupported_op", "add the op to the firmware's op resolver, or re-export the "
                          "model with ops TFLite Micro supports"),
    sf.E.ARENA_TOO_SMALL: ("arena_too_small", "raise arena in targets.toml (emulator) or the firmware's "
                           "arena size, or use a smaller/int8 model"),
    sf.E.CRASHED: ("crashed", "TFLite Micro aborted on this model; check that it is a valid int8/float32 "
                   "model TFLite Micro supports"),
    sf.E.INVOKE_FAILED: ("invoke_failed", "TFLite Micro could not run this model"),
    sf.E.UNSUPPORTED: ("unsupported", None),
    sf.E.BAD_STATE: ("bad_state", "the device lost its state (did it reset?); check its power and cable, "
                     "then run again"),
    sf.E.BAD_VERSION: ("protocol", "flash the firmware that ships with this harness"),
}


def _serial_error(target: str, port: str, exc: Exception) -> TransportError:
    errno = getattr(exc, "errno", None)  # pyserial repeats "[Errno N] ..." inside its own text
    reason = os.strerror(errno) if isinstance(errno, int) else str(exc)
    return TransportError(f"serial port {port}: {reason}", target=target,
                          hint="check port = ... in targets.toml, that the board is plugged in, and that "
                               "no other program (a serial monitor) holds the port")


class SerialLink:
    """A byte pipe to the board over pyserial (device path or URL)."""

    def __init__(self, target: str, port: str, baud: int) -> None:
        self.target = target
        self.port = port
        self.baud = baud
        # pyserial's rfc2217 handler refuses write_timeout; elsewhere it bounds a write to a
        # port whose other end stopped reading (flow control held by a hung board).
        extra = {} if port.startswith("rfc2217://") else {"write_timeout": WRITE_TIMEOUT_S}
        try:
            # A fixed short timeout: changing it later makes the rfc2217 handler renegotiate.
            self.ser = serial.serial_for_url(port, baudrate=baud, timeout=READ_SLICE_S, **extra)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise _serial_error(target, port, exc) from exc

    def write(self, data: bytes) -> None:
        try:
            self.ser.write(data)
        except (serial.SerialException, OSError) as exc:
            raise _serial_error(self.target, self.port, exc) from exc

    def read(self, timeout: float) -> bytes:
        """What arrives within ``timeout`` s: returns as soon as any byte is there, b"" if none."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                waiting = self.ser.in_waiting
                if waiting:
                    return bytes(self.ser.read(waiting))
                first = bytes(self.ser.read(1))  # waits at most READ_SLICE_S
                if first:
                    waiting = self.ser.in_waiting
                    return first + (bytes(self.ser.read(waiting)) if waiting else b"")
                if time.monotonic() >= deadline:
                    return b""
        except (serial.SerialException, OSError) as exc:
            raise _serial_error(self.target, self.port, exc) from exc

    def discard_input(self) -> None:
        try:
            self.ser.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise _serial_error(self.target, self.port, exc) from exc

    def close(self) -> None:
        try:
            self.ser.close()
        except (serial.SerialException, OSError) as exc:
            log.debug("%s: closing %s: %s", self.target, self.port, exc)


class DeviceReset(TransportError):
    """The device sent BOOT in the middle of a conversation: everything on it is gone."""


class FramedLink:
    """Request/reply over a SerialLink, with retransmission and line-quality counters."""

    def __init__(self, link: SerialLink, cancelled: Callable[[], bool] = lambda: False) -> None:
        self.link = link
        self.target = link.target
        self.decoder = sf.Decoder(max_payload=HOST_MAX_PAYLOAD)
        self.seq = 0
        self.max_payload = sf.MIN_PAYLOAD  # the device's, known after hello()
        self.retransmissions = 0
        self.cancelled = cancelled

    def line_time_s(self, n_bytes: int) -> float:
        return sf.frame_time_s(n_bytes, self.link.baud)

    def request(self, type_: int, payload: bytes = b"", *, work_s: float = 1.0,
                reply_bytes: int | None = None, what: str = "", boot_ok: bool = False) -> sf.Frame:
        """Send a request and return its OK reply; raise AgentError for an ERROR reply.

        ``work_s`` is how long the device may take to do the command itself, ``reply_bytes``
        the largest reply payload expected (default: the device's max payload). ``boot_ok``: a
        BOOT frame is expected (the device may have just powered up) rather than a reset to report.
        """
        self.seq = self.seq % 255 + 1  # 1..255; 0 is the device's own (BOOT)
        frame = sf.encode(type_, self.seq, payload)
        reply_max = self.max_payload if reply_bytes is None else reply_bytes
        per_try = (self.line_time_s(len(frame)) + self.line_time_s(reply_max + sf.OVERHEAD)
                   + work_s + SLACK_S)
        what = what or f"request 0x{type_:02x}"
        crc_before, discarded_before = self.decoder.crc_errors, self.decoder.discarded
        for attempt in range(RETRIES + 1):
            if attempt:
                self.retransmissions += 1
                log.info("%s: no reply to %s within %.1f s, resending (%d/%d)",
                         self.target, what, per_try, attempt, RETRIES)
            self.link.write(frame)
            reply = self._await(self.seq, time.monotonic() + per_try, boot_ok, what)
            if reply is not None:
                if reply.type == sf.T.ERROR:
                    raise self._agent_error(sf.unpack_error(reply.payload), what)
                if reply.type != sf.reply_type(type_):
                    raise TransportError(f"the device answered {what} with frame type 0x{reply.type:02x}",
                                         target=self.target, hint="flash the firmware that ships with harness")
                return reply
        garbled = self.decoder.crc_errors - crc_before
        junk = self.decoder.discarded - discarded_before
        total = (RETRIES + 1) * per_try
        if junk or garbled:
            raise TransportError(
                f"only garbled bytes from {self.link.port} for {what} ({junk} bytes discarded, {garbled} "
                f"failed checks over {RETRIES + 1} attempts in {total:.1f} s)", target=self.target,
                hint=f"check that baud = {self.link.baud} in targets.toml matches the firmware's line rate, "
                     "and the cable")
        raise TransportError(
            f"no reply from the device on {self.link.port} to {what} after {RETRIES + 1} attempts "
            f"({total:.1f} s)", target=self.target,
            hint=f"check that the board runs the harness firmware at baud = {self.link.baud} (targets.toml), "
                 "is powered and not hung (reset it); raise timeout_s in targets.toml for very slow models")

    def _await(self, seq: int, deadline: float, boot_ok: bool, what: str) -> sf.Frame | None:
        while True:
            if self.cancelled():
                raise TransportError("cancelled", target=self.target)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self.link.read(min(left, 0.1))
            if not data:
                continue
            for event in self.decoder.feed(data):
                if isinstance(event, sf.Rejected):
                    log.warning("%s: rejected a frame from the device (%s, version %d, %d bytes)",
                                self.target, event.reason, event.version, event.length)
                    if event.reason == "version":
                        raise AgentError(f"the device speaks serial protocol version {event.version}, "
                                         f"harness speaks {sf.VERSION}", code="protocol", target=self.target,
                                         hint="flash the firmware that ships with this harness")
                    continue
                if event.type == sf.T.BOOT and boot_ok:
                    continue
                if event.type == sf.T.BOOT:
                    raise DeviceReset(f"the device on {self.link.port} reset (it sent BOOT) while harness "
                                      f"waited for the reply to {what}; its model and state are gone",
                                      target=self.target,
                                      hint="check the board's power supply and that the model does not "
                                           "crash the firmware, then run again")
                if event.seq == seq:
                    return event
                log.debug("%s: ignoring stale frame seq %d type 0x%02x", self.target, event.seq, event.type)

    def _agent_error(self, err: dict[str, Any], what: str) -> AgentError:
        code, hint = ERROR_CODES.get(int(err["code"]), (str(err["name"]).lower(), None))
        message = f"the device refused {what}: {err['name']}"
        if err.get("message"):
            message += f": {err['message']}"
        return AgentError(message, code=code, target=self.target, hint=hint, detail=err.get("detail"))

    def hello(self) -> dict[str, Any]:
        """HELLO: the device's INFO. Drops whatever was queued before (BOOT, stale replies) and
        restarts the line counters (retransmissions, CRC errors, discarded bytes)."""
        self.link.discard_input()
        self.decoder = sf.Decoder(max_payload=HOST_MAX_PAYLOAD)  # line counters count per conversation
        self.retransmissions = 0
        reply = self.request(sf.T.HELLO, struct.pack("<H", HOST_MAX_PAYLOAD), work_s=0.5,
                             reply_bytes=600, what="HELLO", boot_ok=True)
        info = sf.unpack_info(reply.payload)
        if info["protocol_version"] != sf.VERSION:
            raise AgentError(f"the device speaks serial protocol version {info['protocol_version']}, harness "
                             f"speaks {sf.VERSION}", code="protocol", target=self.target,
                             hint="flash the firmware that ships with this harness")
        self.max_payload = min(int(info["max_payload"]), HOST_MAX_PAYLOAD)
        return info

    def close(self) -> None:
        self.link.close()
