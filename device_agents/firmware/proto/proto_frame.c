/* Frame encoder and parser; see proto_frame.h for the contract and SERIAL_PROTOCOL.md 1.1 for
 * the receive algorithm, which this follows step by step (the Python reference is
 * device_agents/wire/serial_frames.py: Decoder). */
#include "proto_frame.h"

#include <string.h>

#include "proto_crc.h"

int proto_parser_init(proto_parser_t *p, uint8_t *buf, uint32_t cap, uint16_t max_payload)
{
    memset(p, 0, sizeof *p);
    if (buf == NULL || max_payload < PROTO_MIN_PAYLOAD || max_payload > PROTO_MAX_PAYLOAD_V1 ||
        cap < PROTO_FRAME_BUF(max_payload))
        return -1;
    p->buf = buf;
    p->cap = cap;
    p->max_payload = max_payload;
    return 0;
}

void proto_parser_clear(proto_parser_t *p)
{
    p->len = 0;
    p->deliver_len = 0;
}

static void remove_head(proto_parser_t *p, uint32_t n)
{
    if (n > p->len)
        n = p->len;
    memmove(p->buf, p->buf + n, p->len - n);
    p->len -= n;
}

static void drop(proto_parser_t *p, uint32_t n)
{
    if (n > p->len)
        n = p->len;
    remove_head(p, n);
    p->discarded += n;
}

static void release_delivered(proto_parser_t *p)
{
    if (p->deliver_len) {
        remove_head(p, p->deliver_len);
        p->deliver_len = 0;
    }
}

void proto_parser_push(proto_parser_t *p, uint8_t byte)
{
    release_delivered(p);
    if (p->len >= p->cap) /* only if the caller skipped proto_parser_next: never overflow */
        drop(p, 1);
    p->buf[p->len++] = byte;
}

uint32_t proto_parser_pending(const proto_parser_t *p)
{
    return p->len - p->deliver_len;
}

void proto_parser_drop_partial(proto_parser_t *p)
{
    release_delivered(p);
    if (p->len)
        drop(p, 1);
}

int proto_parser_next(proto_parser_t *p, proto_event_t *ev)
{
    release_delivered(p);
    for (;;) {
        uint32_t i, end;
        uint16_t length;
        /* 1. Discard up to the first A5 5A; a lone trailing A5 may be half of the next sync. */
        for (i = 0; i + 1 < p->len; i++)
            if (p->buf[i] == PROTO_SYNC0 && p->buf[i + 1] == PROTO_SYNC1)
                break;
        if (i + 1 >= p->len) {
            uint32_t keep = (p->len && p->buf[p->len - 1] == PROTO_SYNC0) ? 1u : 0u;
            drop(p, p->len - keep);
            return 0;
        }
        drop(p, i);
        /* 2. The header and its CRC. */
        if (p->len < PROTO_HEADER_SIZE)
            return 0;
        if (proto_crc16(p->buf, 7, 0xFFFFu) != proto_get_u16(p->buf + 7)) {
            p->crc_errors++;
            drop(p, 1);
            continue;
        }
        length = proto_get_u16(p->buf + 5);
        ev->version = p->buf[2];
        ev->type = p->buf[3];
        ev->seq = p->buf[4];
        ev->length = length;
        ev->payload = NULL;
        ev->crc = 0;
        /* 3./4. An intact header we cannot accept: skip it, its payload is rescanned as noise. */
        if (p->buf[2] != PROTO_VERSION || length > p->max_payload) {
            ev->kind = (p->buf[2] != PROTO_VERSION) ? PROTO_EV_BAD_VERSION : PROTO_EV_TOO_LONG;
            drop(p, PROTO_HEADER_SIZE);
            return 1;
        }
        /* 5. The whole frame and its CRC-32; a bad one costs one byte, the rest is rescanned. */
        end = PROTO_HEADER_SIZE + (uint32_t)length + 4u;
        if (p->len < end)
            return 0;
        ev->crc = proto_get_u32(p->buf + end - 4u);
        if (proto_crc32(p->buf, end - 4u, 0) != ev->crc) {
            p->crc_errors++;
            drop(p, 1);
            continue;
        }
        /* 6. Deliver; the bytes are removed on the next call, so the payload stays valid. */
        ev->kind = PROTO_EV_FRAME;
        ev->payload = p->buf + PROTO_HEADER_SIZE;
        p->deliver_len = end;
        return 1;
    }
}

uint32_t proto_frame_seal(uint8_t *frame, uint32_t cap, uint8_t version, uint8_t type, uint8_t seq,
                          uint16_t len)
{
    uint32_t total = (uint32_t)len + PROTO_OVERHEAD;
    if (frame == NULL || cap < total)
        return 0;
    frame[0] = PROTO_SYNC0;
    frame[1] = PROTO_SYNC1;
    frame[2] = version;
    frame[3] = type;
    frame[4] = seq;
    proto_put_u16(frame + 5, len);
    proto_put_u16(frame + 7, proto_crc16(frame, 7, 0xFFFFu));
    proto_put_u32(frame + PROTO_HEADER_SIZE + len, proto_crc32(frame, PROTO_HEADER_SIZE + (uint32_t)len, 0));
    return total;
}

uint32_t proto_encode(uint8_t *out, uint32_t cap, uint8_t type, uint8_t seq, const uint8_t *payload,
                      uint16_t len)
{
    if (out == NULL || cap < (uint32_t)len + PROTO_OVERHEAD)
        return 0;
    if (len)
        memmove(out + PROTO_HEADER_SIZE, payload, len);
    return proto_frame_seal(out, cap, PROTO_VERSION, type, seq, len);
}
