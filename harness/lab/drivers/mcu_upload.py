"""Getting a model onto a serial board: the firmware's built-in model when its SHA-256 matches
(USE_BUILTIN), else an upload in acknowledged chunks (UPLOAD_BEGIN, UPLOAD_CHUNK, UPLOAD_END;
SERIAL_PROTOCOL.md 3.2 to 3.4).

The device acknowledges each chunk with the byte count it holds, so a device that goes back
(a reset mid-upload) is caught at the chunk it happened, not as a wrong model at the end; the
model it reports loading is checked against the bytes sent. The upload time is the host's wall
time (``host_measured``), with the line rate beside it, in a ``push`` message.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from typing import Any

from device_agents.wire import serial_frames as sf
from harness.errors import AgentError, TransportError
from harness.lab.drivers.base import Emit
from harness.lab.drivers.mcu_messages import PROTOCOL_VERSION
from harness.lab.transports.serial import FramedLink
from harness.models.files import sha256

log = logging.getLogger(__name__)

Request = Callable[..., sf.Frame]  # McuDriver._req: (type, payload, **FramedLink.request options)


def upload_or_builtin(req: Request, link: FramedLink, target: str, name: str, model: bytes, emit: Emit,
                      info: dict[str, Any], timeout_s: float, baud: int) -> dict[str, Any]:
    """MODEL_INFO of ``model`` (file ``name``) loaded on the device, built in or uploaded now."""
    digest = bytes.fromhex(sha256(model))
    if info["flags"] & sf.FLAG_BUILTIN:
        minfo = sf.unpack_model_info(req(sf.T.USE_BUILTIN, work_s=timeout_s, what="USE_BUILTIN").payload)
        if minfo["sha256"] == digest:
            log.info("%s: %s is the firmware's built-in model: no upload", target, name)
            return minfo
        if not info["max_model_bytes"]:
            raise AgentError(f"the firmware's built-in model (sha256 {minfo['sha256'].hex()[:12]}) is not "
                             f"{name} (sha256 {digest.hex()[:12]}), and the device takes no "
                             "uploads", code="hash_mismatch", target=target,
                             hint=f"flash firmware built with {name}, or pass the model it has")
    t0 = time.monotonic_ns()
    _send_chunks(req, link, target, name, model, digest)
    upload_ns = time.monotonic_ns() - t0
    minfo = sf.unpack_model_info(req(sf.T.UPLOAD_END, work_s=timeout_s, what=f"UPLOAD_END of {name}").payload)
    emit({"v": PROTOCOL_VERSION, "type": "push", "file": name, "what": "model",
          "bytes": len(model), "ns": upload_ns, "host_measured": True,
          "line_rate_bytes_per_s": baud / sf.BITS_PER_BYTE,
          "retransmissions": link.retransmissions})
    if minfo["sha256"] != digest:
        raise AgentError(f"the device loaded a model with sha256 {minfo['sha256'].hex()[:12]}, not "
                         f"{name} ({digest.hex()[:12]})", code="hash_mismatch",
                         target=target, hint="flash the firmware that ships with harness")
    return minfo


def _send_chunks(req: Request, link: FramedLink, target: str, name: str, model: bytes, digest: bytes) -> None:
    """UPLOAD_BEGIN and every chunk, each as large as the device and the frame allow."""
    reply = req(sf.T.UPLOAD_BEGIN, struct.pack("<I", len(model)) + digest, what="UPLOAD_BEGIN", reply_bytes=4)
    max_chunk = min(struct.unpack("<I", reply.payload)[0], link.max_payload - 4)
    offset = 0
    while offset < len(model):
        piece = model[offset:offset + max_chunk]
        reply = req(sf.T.UPLOAD_CHUNK, struct.pack("<I", offset) + piece, reply_bytes=4,
                    what=f"UPLOAD_CHUNK at byte {offset} of {name}")
        (received,) = struct.unpack("<I", reply.payload)
        if received < offset:
            raise TransportError(f"the device went back to byte {received} of {name} during "
                                 "the upload (did it reset?)", target=target,
                                 hint="check the board's power and cable, then run again")
        offset = received
