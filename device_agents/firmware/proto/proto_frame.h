/* Frame encoder and streaming, resynchronising frame parser (SERIAL_PROTOCOL.md section 1).
 *
 * The parser works in a caller-supplied fixed buffer of at least PROTO_FRAME_BUF(max_payload)
 * bytes and never allocates. Feed it one byte at a time:
 *
 *     proto_parser_push(&p, byte);
 *     while (proto_parser_next(&p, &ev)) handle(&ev);   // ev.payload points into p's buffer
 *
 * A delivered payload stays valid until the next call on the parser. After proto_parser_next
 * has returned 0 the buffer always has room for one more byte (it then holds only a prefix of
 * one frame), so push never has to drop data it has not examined.
 */
#ifndef PROTO_FRAME_H
#define PROTO_FRAME_H

#include <stdint.h>

#include "proto_wire.h"

#ifdef __cplusplus
extern "C" { /* the TFLite Micro backend is C++ */
#endif

/* Bytes the parser needs for frames of up to max_payload payload bytes. */
#define PROTO_FRAME_BUF(max_payload) ((uint32_t)(max_payload) + PROTO_OVERHEAD)

typedef enum {
    PROTO_EV_FRAME = 0,       /* an intact frame of version 1 */
    PROTO_EV_BAD_VERSION = 1, /* intact header, VER != 1: payload not trusted, not delivered */
    PROTO_EV_TOO_LONG = 2     /* intact header, LEN > max_payload */
} proto_event_kind;

typedef struct {
    proto_event_kind kind;
    uint8_t version;
    uint8_t type;
    uint8_t seq;
    uint16_t length;        /* LEN from the header */
    const uint8_t *payload; /* PROTO_EV_FRAME only: length bytes inside the parser's buffer */
    uint32_t crc;           /* PROTO_EV_FRAME only: the frame's CRC-32, identifies retransmissions */
} proto_event_t;

typedef struct {
    uint8_t *buf;
    uint32_t cap;
    uint32_t len;
    uint32_t deliver_len; /* bytes of the frame handed out last; removed on the next call */
    uint16_t max_payload;
    uint32_t discarded;  /* bytes thrown away while hunting for frames (noise, wrong baud) */
    uint32_t crc_errors; /* failed header or frame checks */
} proto_parser_t;

/* buf must hold PROTO_FRAME_BUF(max_payload) bytes; returns 0, or -1 if it is too small. */
int proto_parser_init(proto_parser_t *p, uint8_t *buf, uint32_t cap, uint16_t max_payload);
/* Forget everything buffered (reset). Counters are kept. */
void proto_parser_clear(proto_parser_t *p);
void proto_parser_push(proto_parser_t *p, uint8_t byte);
/* 1 and fills ev when an event is complete, else 0. */
int proto_parser_next(proto_parser_t *p, proto_event_t *ev);
/* Bytes held for a frame that is not complete yet. */
uint32_t proto_parser_pending(const proto_parser_t *p);
/* Inter-byte timeout: give up on the partial frame at the head, drop one byte, rescan with next. */
void proto_parser_drop_partial(proto_parser_t *p);

/* Writes header and CRC around a payload already placed at frame[PROTO_HEADER_SIZE..+len).
 * Returns the frame size, or 0 when 13 + len does not fit cap. */
uint32_t proto_frame_seal(uint8_t *frame, uint32_t cap, uint8_t version, uint8_t type, uint8_t seq,
                          uint16_t len);
/* Copies payload (may overlap out) and seals; returns the frame size or 0 when it does not fit. */
uint32_t proto_encode(uint8_t *out, uint32_t cap, uint8_t type, uint8_t seq, const uint8_t *payload,
                      uint16_t len);

#ifdef __cplusplus
}
#endif

#endif
