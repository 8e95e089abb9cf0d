/* The device side of serial protocol v1: parser + command dispatch over a proto_backend_t.
 *
 * Portable C99, no allocation, no libc beyond memcpy/memmove/memset/memcmp, no TFLite Micro.
 * The platform supplies a write function (blocking UART/USB/tty write) and calls:
 *
 *     proto_device_init(&dev, &backend, uart_write, uart_ctx, max_payload);
 *     proto_device_boot(&dev);                       // BOOT, once after reset
 *     for (;;) {
 *         if (byte arrived) proto_device_rx(&dev, byte);
 *         else if (proto_device_pending(&dev) && idle >= PROTO_INTER_BYTE_TIMEOUT_MS)
 *             proto_device_idle(&dev);
 *     }
 *
 * The device is large (two frame buffers of PROTO_MAX_PAYLOAD + 13 bytes, and 17 bytes per STREAM
 * record of PROTO_STREAM_MAX_FRAMES): make it static.
 */
#ifndef PROTO_DEVICE_H
#define PROTO_DEVICE_H

#include <stdint.h>

#include "proto_backend.h"
#include "proto_frame.h"
#include "proto_stream.h"

#ifdef __cplusplus
extern "C" { /* the TFLite Micro backend is C++ */
#endif

/* Compile-time ceiling of max_payload; 4096 data bytes + UPLOAD_CHUNK's 4-byte offset + 4 spare,
 * the emulator's default too. Lower it for boards with little RAM (>= 64). */
#ifndef PROTO_MAX_PAYLOAD
#define PROTO_MAX_PAYLOAD 4104u
#endif

#if PROTO_MAX_PAYLOAD < 64 || PROTO_MAX_PAYLOAD > 8192
#error "PROTO_MAX_PAYLOAD must be within 64..8192 (SERIAL_PROTOCOL.md section 1)"
#endif

typedef void (*proto_write_fn)(void *io, const uint8_t *data, uint32_t len);

typedef struct {
    const proto_backend_t *backend;
    proto_write_fn write;
    void *io;
    proto_info_t info;    /* cached at init: static facts of the board */
    uint16_t max_payload; /* what this device accepts and announces */
    uint16_t reply_limit; /* host_max_payload from HELLO, 64 until then */
    proto_parser_t parser;
    uint8_t rx[PROTO_FRAME_BUF(PROTO_MAX_PAYLOAD)];
    /* tx holds the last reply, resent verbatim for a retransmitted request; BOOT and errors
     * about rejected headers go through aux so they never overwrite it. */
    uint8_t tx[PROTO_FRAME_BUF(PROTO_MAX_PAYLOAD)];
    uint32_t tx_len;
    uint8_t aux[PROTO_OVERHEAD + 8u + PROTO_MAX_ERROR_MESSAGE];
    int have_last;
    uint8_t last_seq;
    uint32_t last_crc;
    /* Upload in progress (section 3.2, 3.3). */
    int uploading;
    uint32_t up_size;
    uint32_t up_received;
    uint8_t up_sha256[32];
    /* Loaded model (section 3.4). */
    int loaded;
    int invoked;
    proto_model_t model;
    uint8_t model_sha256[32];
    /* The last STREAM batch's records (section 3.12), 17 bytes each, for GET_STREAM. */
    uint16_t stream_frames;
    uint8_t stream_records[PROTO_STREAM_MAX_FRAMES ? PROTO_STREAM_MAX_FRAMES * PROTO_STREAM_RECORD_BYTES : 1u];
    /* Counters for diagnostics. */
    uint32_t frames;  /* intact requests executed */
    uint32_t replays; /* retransmissions answered from memory */
} proto_device_t;

/* Returns 0, or -1 when max_payload is outside 64..PROTO_MAX_PAYLOAD or an argument is NULL. */
int proto_device_init(proto_device_t *dev, const proto_backend_t *backend, proto_write_fn write, void *io,
                      uint16_t max_payload);
/* Sends BOOT (SEQ 0); call once after power-up and after every reset. */
void proto_device_boot(proto_device_t *dev);
/* Drops all state (upload, model, duplicate memory, partial frames), as a reset does. */
void proto_device_reset(proto_device_t *dev);
/* One received byte; replies are written before this returns. */
void proto_device_rx(proto_device_t *dev, uint8_t byte);
/* Inter-byte timeout expired with a partial frame pending: rescan it as noise. */
void proto_device_idle(proto_device_t *dev);
uint32_t proto_device_pending(const proto_device_t *dev);

#ifdef __cplusplus
}
#endif

#endif
