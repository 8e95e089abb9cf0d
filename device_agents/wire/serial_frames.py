"""Frames and payloads of the serial protocol v1 (see SERIAL_PROTOCOL.md), shared by both ends.

Wire grammar of one frame (little-endian)::

    A5 5A | VER u8 | TYPE u8 | SEQ u8 | LEN u16 | HCRC u16 | PAYLOAD[LEN] | CRC u32
    HCRC = CRC-16/CCITT-FALSE(bytes 0..6), CRC = CRC-32/IEEE(bytes 0..8+LEN)

Used by the emulated MCU (device side) and by harness.lab.drivers.mcu (host side). Runs on
Python >= 3.8 with the standard library only, and never imports harness.
"""

import struct
import zlib
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

VERSION = 1
SYNC = b"\xa5\x5a"
HEADER_SIZE = 9
OVERHEAD = 13  # header + CRC-32
MAX_PAYLOAD_V1 = 8192
MIN_PAYLOAD = 64
BITS_PER_BYTE = 10  # 8N1: start + 8 data + stop, what a UART spends per byte


class T:
    """Message types (section 3). A reply is its request's type | 0x80."""

    HELLO = 0x01
    UPLOAD_BEGIN = 0x02
    UPLOAD_CHUNK = 0x03
    UPLOAD_END = 0x04
    USE_BUILTIN = 0x05
    GET_TENSOR = 0x06
    SET_INPUT = 0x07
    RANDOM_INPUT = 0x08
    RUN = 0x09
    GET_OUTPUT = 0x0A
    GET_PROFILE = 0x0B
    PING = 0x0C
    EVAL = 0x0D
    STREAM = 0x0E
    GET_STREAM = 0x0F
    OK = 0x80
    BOOT = 0xF0
    ERROR = 0xFF


class E:
    """Error codes (section 5)."""

    UNKNOWN_TYPE = 1
    BAD_LENGTH = 2
    BAD_VERSION = 3
    BAD_STATE = 4
    MODEL_TOO_LARGE = 5
    BAD_OFFSET = 6
    HASH_MISMATCH = 7
    BAD_MODEL = 8
    UNSUPPORTED_OP = 9
    ARENA_TOO_SMALL = 10
    BAD_INDEX = 11
    UNSUPPORTED = 12
    INVOKE_FAILED = 13
    CRASHED = 14
    BAD_ARGUMENT = 15
    FRAME_TOO_LONG = 16
    INTERNAL = 255


ERROR_NAMES = {v: k for k, v in vars(E).items() if not k.startswith("_")}

FLAG_EMULATED = 1 << 0
FLAG_PROFILER = 1 << 1
FLAG_BUILTIN = 1 << 2
FLAG_CYCLE_COUNTER = 1 << 3
FLAG_EVAL = 1 << 4  # the EVAL request is available (section 3.11)
FLAG_STREAM = 1 << 5  # STREAM and GET_STREAM are available (section 3.12)

UNKNOWN_U32 = 0xFFFFFFFF
SAMPLE_FIELDS = ("loop", "set_input", "invoke", "get_output")
MODE_WITH, MODE_WITHOUT = 0, 1

# TfLiteType codes that the protocol names, with their numpy dtype names and element sizes.
DTYPES = {1: ("float32", 4), 2: ("int32", 4), 3: ("uint8", 1), 4: ("int64", 8), 6: ("bool", 1),
          7: ("int16", 2), 9: ("int8", 1), 10: ("float16", 2)}
DTYPE_CODES = {name: code for code, (name, _) in DTYPES.items()}


def _crc16_table() -> List[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC16 = _crc16_table()


def crc16_ccitt(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF); check value of b"123456789" is 0x29B1."""
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[((crc >> 8) ^ byte) & 0xFF]
    return crc


def crc32(data: bytes) -> int:
    """CRC-32/IEEE as zlib computes it; check value of b"123456789" is 0xCBF43926."""
    return zlib.crc32(data) & 0xFFFFFFFF


class Frame(NamedTuple):
    """One intact frame. ``crc`` is its CRC-32, which identifies retransmissions."""

    type: int
    seq: int
    payload: bytes
    crc: int = 0
    version: int = VERSION


class Rejected(NamedTuple):
    """A frame whose header was intact but which cannot be accepted (bad version, too long)."""

    reason: str  # "version" or "too_long"
    type: int
    seq: int
    length: int
    version: int


Event = Union[Frame, Rejected]


def encode(type_: int, seq: int, payload: bytes = b"", version: int = VERSION) -> bytes:
    """The bytes of one frame."""
    if len(payload) > 0xFFFF:
        raise ValueError("payload of %d bytes does not fit a frame" % len(payload))
    head = SYNC + struct.pack("<BBBH", version, type_ & 0xFF, seq & 0xFF, len(payload))
    head += struct.pack("<H", crc16_ccitt(head))
    body = head + bytes(payload)
    return body + struct.pack("<I", crc32(body))


def frame_time_s(n_bytes: int, baud: float) -> float:
    """Seconds a UART at ``baud`` (8N1) needs to carry ``n_bytes``."""
    return n_bytes * BITS_PER_BYTE / float(baud)


class Decoder:
    """Incremental receiver with resynchronisation (SERIAL_PROTOCOL.md section 1.1).

    ``feed`` returns the events completed by the new bytes. ``discarded`` counts bytes thrown
    away while hunting for a frame and ``crc_errors`` counts failed checks: both are what a wrong
    baud rate or line noise look like from this side.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD_V1) -> None:
        self.max_payload = max_payload
        self.buf = bytearray()
        self.discarded = 0
        self.crc_errors = 0

    def pending(self) -> int:
        """Bytes held for a frame that is not complete yet."""
        return len(self.buf)

    def drop_partial(self) -> None:
        """Give up on the partial frame at the head (inter-byte timeout): drop one byte, rescan."""
        if self.buf:
            del self.buf[0]
            self.discarded += 1

    def feed(self, data: bytes) -> List[Event]:
        self.buf += data
        return list(self._events())

    def _drop(self, n: int) -> None:
        del self.buf[:n]
        self.discarded += n

    def _events(self) -> Iterator[Event]:
        buf = self.buf
        while True:
            start = buf.find(SYNC)
            if start < 0:
                # Keep a trailing A5: it may be the first half of the next sync.
                keep = 1 if buf[-1:] == SYNC[:1] else 0
                self._drop(len(buf) - keep)
                return
            if start:
                self._drop(start)
            if len(buf) < HEADER_SIZE:
                return
            version, type_, seq, length, hcrc = struct.unpack_from("<BBBHH", buf, 2)
            if crc16_ccitt(bytes(buf[:7])) != hcrc:
                self.crc_errors += 1
                self._drop(1)
                continue
            if version != VERSION or length > self.max_payload:
                self._drop(HEADER_SIZE)
                yield Rejected("version" if version != VERSION else "too_long", type_, seq, length, version)
                continue
            end = HEADER_SIZE + length + 4
            if len(buf) < end:
                return
            (crc,) = struct.unpack_from("<I", buf, end - 4)
            if crc32(bytes(buf[:end - 4])) != crc:
                self.crc_errors += 1
                self._drop(1)
                continue
            payload = bytes(buf[HEADER_SIZE:end - 4])
            del buf[:end]
            yield Frame(type_, seq, payload, crc, version)


# ---------------------------------------------------------------- payload codecs (section 3, 5)

def pack_str8(text: str) -> bytes:
    raw = text.encode("utf-8")[:255]
    return struct.pack("<B", len(raw)) + raw


def unpack_str8(data: bytes, offset: int) -> Tuple[str, int]:
    """The string at ``offset`` and the offset after it."""
    (n,) = struct.unpack_from("<B", data, offset)
    raw = data[offset + 1:offset + 1 + n]
    if len(raw) != n:
        raise ValueError("str8 runs past the end of the payload")
    return raw.decode("utf-8", "replace"), offset + 1 + n


INFO_FIELDS = ("protocol_version", "max_payload", "cpu_hz", "timer_hz", "timer_resolution_ns",
               "arena_bytes", "max_model_bytes", "max_batch", "flags")
_INFO = struct.Struct("<HHIIIIIHH")


def pack_info(info: dict) -> bytes:
    head = _INFO.pack(*(int(info[k]) for k in INFO_FIELDS))
    return head + pack_str8(info["board"]) + pack_str8(info["cpu"]) + pack_str8(info["tflm_version"])


def unpack_info(data: bytes) -> dict:
    info = dict(zip(INFO_FIELDS, _INFO.unpack_from(data, 0)))
    offset = _INFO.size
    for key in ("board", "cpu", "tflm_version"):
        info[key], offset = unpack_str8(data, offset)
    return info


MODEL_INFO_FIELDS = ("model_bytes", "arena_bytes", "arena_used_bytes", "init_ticks",
                     "n_inputs", "n_outputs", "n_ops")
_MODEL_INFO = struct.Struct("<32sIIIIBBH")


def pack_model_info(info: dict) -> bytes:
    return _MODEL_INFO.pack(info["sha256"], *(int(info[k]) for k in MODEL_INFO_FIELDS))


def unpack_model_info(data: bytes) -> dict:
    values = _MODEL_INFO.unpack(data)
    info = dict(zip(MODEL_INFO_FIELDS, values[1:]))
    info["sha256"] = values[0]
    return info


def pack_tensor(dtype: int, shape: Sequence[int], scale: float, zero_point: int, nbytes: int,
                name: str) -> bytes:
    return (struct.pack("<BB", dtype, len(shape)) + struct.pack("<%di" % len(shape), *shape)
            + struct.pack("<fiI", scale, zero_point, nbytes) + pack_str8(name))


def unpack_tensor(data: bytes) -> dict:
    dtype, ndims = struct.unpack_from("<BB", data, 0)
    shape = list(struct.unpack_from("<%di" % ndims, data, 2))
    offset = 2 + 4 * ndims
    scale, zero_point, nbytes = struct.unpack_from("<fiI", data, offset)
    name, _ = unpack_str8(data, offset + 12)
    return {"dtype": dtype, "shape": shape, "scale": scale, "zero_point": zero_point,
            "bytes": nbytes, "name": name}


_ERROR = struct.Struct("<HBI")


def pack_error(code: int, request_type: int, detail: int = 0, message: str = "") -> bytes:
    raw = message.encode("utf-8")[:200]
    return _ERROR.pack(code, request_type & 0xFF, detail & 0xFFFFFFFF) + struct.pack("<B", len(raw)) + raw


def unpack_error(data: bytes) -> dict:
    code, request_type, detail = _ERROR.unpack_from(data, 0)
    message, _ = unpack_str8(data, _ERROR.size) if len(data) > _ERROR.size else ("", 0)
    return {"code": code, "name": ERROR_NAMES.get(code, "code %d" % code),
            "request_type": request_type, "detail": detail, "message": message}


def pack_samples(mode: int, rows: Sequence[Sequence[int]]) -> bytes:
    # Saturate, never wrap: a wrapped tick count would be a plausible-looking wrong time.
    flat = [min(int(v), UNKNOWN_U32) for row in rows for v in row]
    return struct.pack("<BBH", mode, len(SAMPLE_FIELDS), len(rows)) + struct.pack("<%dI" % len(flat), *flat)


def unpack_samples(data: bytes) -> Tuple[int, List[Tuple[int, ...]]]:
    """(mode, rows); each row holds ticks in SAMPLE_FIELDS order."""
    mode, n_fields, count = struct.unpack_from("<BBH", data, 0)
    if n_fields < 1 or len(data) != 4 + 4 * n_fields * count:
        raise ValueError("samples payload of %d bytes does not hold %d rows of %d fields"
                         % (len(data), count, n_fields))
    flat = struct.unpack_from("<%dI" % (n_fields * count), data, 4)
    return mode, [flat[i:i + n_fields] for i in range(0, len(flat), n_fields)]


def pack_eval(outputs: Sequence[bytes], reply_limit: int) -> bytes:
    """EVAL_OK (section 3.11): u32 total bytes of all outputs, then as many of their bytes, output
    0 first, as fit ``reply_limit``."""
    data = b"".join(outputs)
    return struct.pack("<I", len(data)) + data[:max(0, reply_limit - 4)]


def unpack_eval(data: bytes) -> Tuple[int, bytes]:
    """(total bytes of all outputs, the leading bytes of their concatenation carried here)."""
    if len(data) < 4:
        raise ValueError("EVAL_OK payload of %d bytes has no u32 total_bytes" % len(data))
    (total,) = struct.unpack_from("<I", data, 0)
    if len(data) - 4 > total:
        raise ValueError("EVAL_OK carries %d bytes of outputs that total %d" % (len(data) - 4, total))
    return total, bytes(data[4:])


def max_batch_rows(payload_limit: int) -> int:
    """Most samples rows one RUN reply can carry within ``payload_limit`` bytes."""
    return (payload_limit - 4) // (4 * len(SAMPLE_FIELDS))


# ---------------------------------------------------------------- seeded inputs (section 3.7)

def xorshift32(seed: int) -> Iterator[int]:
    state = (seed & 0xFFFFFFFF) or 0x9E3779B9
    while True:
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        yield state


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def random_values(seed: int, tensors: Sequence[Tuple[str, int]]) -> List[list]:
    """The values RANDOM_INPUT(seed) puts in each input, given (dtype name, element count) pairs.

    Returns one flat row-major list per tensor; the caller shapes it. Raises ValueError for a
    dtype the protocol does not define random values for.
    """
    rng = xorshift32(seed)
    out = []  # type: List[list]
    for dtype, count in tensors:
        draw = [next(rng) for _ in range(count)]
        if dtype == "int8":
            out.append([_signed(x >> 24, 8) for x in draw])
        elif dtype == "uint8":
            out.append([x >> 24 for x in draw])
        elif dtype == "bool":
            out.append([x >> 31 for x in draw])
        elif dtype == "int16":
            out.append([_signed(x >> 16, 16) for x in draw])
        elif dtype in ("int32", "int64"):
            out.append([_signed(x, 32) for x in draw])
        elif dtype == "float32":
            out.append([((x >> 8) / 16777216.0) * 2.0 - 1.0 for x in draw])
        else:
            raise ValueError("no random values defined for dtype %s" % dtype)
    return out


def reply_type(request_type: int) -> int:
    return request_type | T.OK


def parse_hello_request(payload: bytes) -> Optional[int]:
    """host_max_payload from a HELLO payload, or None when the payload is malformed."""
    if len(payload) != 2:
        return None
    return struct.unpack("<H", payload)[0]
