"""Framing, CRCs and payload codecs of the serial protocol (pure logic: no tty needed)."""

from __future__ import annotations

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from device_agents.wire import serial_frames as sf

frames = st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=300))


def test_crc_check_values() -> None:
    assert sf.crc16_ccitt(b"123456789") == 0x29B1
    assert sf.crc32(b"123456789") == 0xCBF43926


def test_frame_layout_matches_spec() -> None:
    raw = sf.encode(sf.T.PING, 7, b"abc")
    assert raw[:2] == b"\xa5\x5a" and raw[2] == 1 and raw[3] == 0x0C and raw[4] == 7
    assert struct.unpack_from("<H", raw, 5)[0] == 3
    assert struct.unpack_from("<H", raw, 7)[0] == sf.crc16_ccitt(raw[:7])
    assert raw[9:12] == b"abc"
    assert struct.unpack_from("<I", raw, 12)[0] == sf.crc32(raw[:12])
    assert len(raw) == sf.OVERHEAD + 3


@given(st.lists(frames, max_size=8), st.integers(1, 64))
def test_round_trip_in_any_split(items: list, step: int) -> None:
    wire = b"".join(sf.encode(t, s, p) for t, s, p in items)
    dec = sf.Decoder()
    got = []
    for i in range(0, len(wire), step):
        got += dec.feed(wire[i:i + step])
    assert [(f.type, f.seq, f.payload) for f in got] == items
    assert dec.pending() == 0 and dec.discarded == 0


@given(st.lists(frames, min_size=1, max_size=6), st.lists(st.binary(max_size=40), min_size=7, max_size=7))
def test_resync_after_noise_between_frames(items: list, noise: list) -> None:
    """Garbage between frames never costs a frame: only the garbage is discarded."""
    wire = noise[0]
    for (t, s, p), junk in zip(items, noise[1:], strict=False):
        wire += sf.encode(t, s, p) + junk
    got = [e for e in sf.Decoder().feed(wire) if isinstance(e, sf.Frame)]
    # Noise can by chance contain a whole valid frame only with probability ~2^-48; ignore.
    assert [(f.type, f.seq, f.payload) for f in got][-len(items):] == items


@settings(max_examples=200)
@given(st.lists(frames, min_size=2, max_size=6), st.randoms(use_true_random=False))
def test_damaged_frame_is_dropped_and_the_next_survives(items: list, rnd: random.Random) -> None:
    """Drop, duplicate or flip a byte inside one frame: that frame is lost, all others arrive."""
    encoded = [sf.encode(t, s, p) for t, s, p in items]
    victim = rnd.randrange(len(encoded))
    raw = bytearray(encoded[victim])
    pos = rnd.randrange(len(raw))
    fault = rnd.choice(["drop", "dup", "flip"])
    if fault == "drop":
        del raw[pos]
    elif fault == "dup":
        raw.insert(pos, raw[pos])
    else:
        raw[pos] ^= 1 << rnd.randrange(8)
    encoded[victim] = bytes(raw)
    dec = sf.Decoder()
    got = dec.feed(b"".join(encoded))
    # A dropped byte can leave the decoder waiting for the truncated frame's tail: the
    # inter-byte timeout (drop_partial) then releases it.
    while dec.pending():
        dec.drop_partial()
        got += dec.feed(b"")
    expect = [it for i, it in enumerate(items) if i != victim]
    arrived = [(f.type, f.seq, f.payload) for f in got if isinstance(f, sf.Frame)]
    # A duplicated first or last byte is only noise next to an intact frame: the victim survives.
    edge = fault == "dup" and pos in (0, len(raw) - 2)
    assert arrived == (items if edge else expect)


def test_corrupted_length_does_not_stall_the_next_frame() -> None:
    """The header CRC stops a flipped LEN from making the receiver wait for 65 kB."""
    bad = bytearray(sf.encode(sf.T.PING, 1, b"x" * 10))
    bad[6] ^= 0x80
    good = sf.encode(sf.T.PING, 2, b"y")
    got = sf.Decoder().feed(bytes(bad) + good)
    assert [(f.seq, f.payload) for f in got] == [(2, b"y")]


def test_bad_version_and_too_long_are_reported_not_delivered() -> None:
    dec = sf.Decoder(max_payload=16)
    got = dec.feed(sf.encode(sf.T.PING, 3, b"", version=2) + sf.encode(sf.T.PING, 4, b"z" * 17)
                   + sf.encode(sf.T.PING, 5, b"ok"))
    kinds = [(type(e).__name__, e.seq) for e in got]
    assert kinds[0] == ("Rejected", 3) and got[0].reason == "version"
    assert ("Rejected", 4) in kinds and any(isinstance(e, sf.Rejected) and e.reason == "too_long" for e in got)
    assert kinds[-1] == ("Frame", 5)


def test_payload_codecs_round_trip() -> None:
    info = {"protocol_version": 1, "max_payload": 4104, "cpu_hz": 64_000_000, "timer_hz": 1_000_000,
            "timer_resolution_ns": 1000, "arena_bytes": 65536, "max_model_bytes": 1 << 20,
            "max_batch": 255, "flags": sf.FLAG_EMULATED, "board": "b", "cpu": "Cortex-M4F",
            "tflm_version": "0.dev"}
    assert sf.unpack_info(sf.pack_info(info)) == info
    mi = {"sha256": bytes(range(32)), "model_bytes": 10, "arena_bytes": 20, "arena_used_bytes": 15,
          "init_ticks": 99, "n_inputs": 1, "n_outputs": 2, "n_ops": 3}
    assert sf.unpack_model_info(sf.pack_model_info(mi)) == mi
    t = sf.unpack_tensor(sf.pack_tensor(9, [1, 8, 8, 1], 0.5, -3, 64, "in"))
    assert t == {"dtype": 9, "shape": [1, 8, 8, 1], "scale": 0.5, "zero_point": -3, "bytes": 64, "name": "in"}
    err = sf.unpack_error(sf.pack_error(sf.E.MODEL_TOO_LARGE, sf.T.UPLOAD_BEGIN, 1234, "too big"))
    assert err["name"] == "MODEL_TOO_LARGE" and err["detail"] == 1234 and err["message"] == "too big"
    mode, rows = sf.unpack_samples(sf.pack_samples(1, [(4, 1, 0, 2), (5, 1, 0, 3)]))
    assert mode == 1 and rows == [(4, 1, 0, 2), (5, 1, 0, 3)]


def test_random_values_follow_the_spec() -> None:
    (ints,) = sf.random_values(0, [("int8", 3)])
    state = 0x9E3779B9
    expect = []
    for _ in range(3):
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        expect.append(struct.unpack("<b", bytes([state >> 24]))[0])
    assert ints == expect
    (floats,) = sf.random_values(5, [("float32", 1000)])
    assert all(-1.0 <= v < 1.0 for v in floats)


def test_samples_saturate_instead_of_wrapping() -> None:
    """A tick count past 2^32 must not wrap into a plausible small time (SERIAL_PROTOCOL.md 6)."""
    _, rows = sf.unpack_samples(sf.pack_samples(0, [(1 << 33, 5, 1 << 32, 0)]))
    assert rows == [(sf.UNKNOWN_U32, 5, sf.UNKNOWN_U32, 0)]
