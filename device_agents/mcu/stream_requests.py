"""The emulated MCU's STREAM and GET_STREAM (SERIAL_PROTOCOL.md 3.12), a part of emulator.Device.

The batch itself runs in the TFLite Micro child (tflm_worker.py ``op_stream``), on
``time.perf_counter_ns``: its times are host times, labelled emulated in HELLO like every other
sample of the emulator. The device keeps the last batch's records, at most ``--stream-frames``
(256 by default, as ``fw_host``), for GET_STREAM to page. Runs on Python >= 3.8; never imports
harness.
"""

import struct
from typing import Any, List  # noqa: F401 - List is used in type comments

from device_agents.wire import serial_frames as sf
from device_agents.wire import serial_stream as ss


class StreamRequests:
    """STREAM / GET_STREAM handlers; the Device supplies model, args, reply_limit and _call."""

    model = None  # type: Any
    args = None  # type: Any
    reply_limit = sf.MIN_PAYLOAD
    stream_records = []  # type: List[ss.Record]

    def _call(self, *req: Any) -> Any:
        raise NotImplementedError

    def drop_stream(self) -> None:
        """Loading a model or a reset drops the records of the last batch."""
        self.stream_records = []

    def on_stream(self, p: bytes) -> Any:
        # (a payload of another length is BAD_LENGTH, refused by dispatch before this)
        req = ss.unpack_request(p)
        if self.model is None:
            return sf.E.BAD_STATE, 0, "no model loaded"
        why = ss.check_request(req, self.args.stream_frames)
        if why:
            return sf.E.BAD_ARGUMENT, self.args.stream_frames, "STREAM " + why
        self.stream_records = []
        value = self._call("stream", *req)
        if isinstance(value, tuple):  # the child died (CRASHED: the model is gone) or refused
            return value
        self.stream_records = [ss.Record(*r) for r in value["records"]]
        if value["error"]:
            return tuple(value["error"])
        return ss.pack_result(ss.Result(*value["result"]))

    def on_get_stream(self, p: bytes) -> Any:
        (first,) = struct.unpack("<H", p)
        held = len(self.stream_records)
        if first > held:
            return sf.E.BAD_ARGUMENT, held, "first %d past the %d records held" % (first, held)
        return ss.pack_get_reply(self.args.stream_frames, self.stream_records, first, self.reply_limit)
