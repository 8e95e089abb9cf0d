/* STREAM (SERIAL_PROTOCOL.md 3.12): a batch of a stream's frames, scheduled and timed on the device.
 *
 * Portable C99, no allocation, no libm: the Poisson gaps need ln(), computed here in double from
 * the exact decomposition of the 24-bit uniform (the reference is serial_stream.py, which uses
 * the C library's log; the two agree to a few units in the last place, so a gap may differ by 1
 * tick, never more). The batch loop only needs a timer read and one application-loop iteration,
 * both given as callbacks, so it is tested here with a simulated clock (host/test_stream.c) and
 * runs on every board unchanged.
 *
 * Wire grammar of the request (24 bytes, little-endian):
 *     u8 arrivals | u8 policy | u16 count | u32 period | u32 deadline | u32 work | u32 rng_state | u32 busy
 * and of one record (17 bytes): u32 scheduled | u32 start | u32 end | u32 invoke | u8 flags.
 */
#ifndef PROTO_STREAM_H
#define PROTO_STREAM_H

#include <stdint.h>

#include "proto_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Records one batch may hold: 17 bytes each in proto_device_t (4,352 bytes at 256). 0 builds
 * firmware without STREAM. */
#ifndef PROTO_STREAM_MAX_FRAMES
#define PROTO_STREAM_MAX_FRAMES 256u
#endif
#if PROTO_STREAM_MAX_FRAMES > 65535
#error "PROTO_STREAM_MAX_FRAMES must fit STREAM's u16 count"
#endif

#define PROTO_STREAM_REQUEST_BYTES 24u
#define PROTO_STREAM_REPLY_BYTES 24u
#define PROTO_STREAM_RECORD_BYTES 17u
#define PROTO_STREAM_GET_HEADER 7u
#define PROTO_STREAM_LIMIT 0x80000000u /* a batch ends before a frame at 2^31 ticks: records fit u32 */
#define PROTO_STREAM_LATE 0x01u
#define PROTO_STREAM_DROPPED 0x02u
#define PROTO_ARRIVALS_FIXED 0u
#define PROTO_ARRIVALS_POISSON 1u
#define PROTO_POLICY_QUEUE 0u
#define PROTO_POLICY_DROP_LATE 1u

typedef struct {
    uint8_t arrivals;
    uint8_t policy;
    uint16_t count;
    uint32_t period;   /* ticks: the period, or the mean gap */
    uint32_t deadline; /* ticks after a frame's scheduled time */
    uint32_t work;     /* ticks spun at the start of each frame */
    uint32_t rng_state;
    uint32_t busy; /* backlog carried in: busy until this many ticks after the start */
} proto_stream_request_t;

typedef struct {
    uint16_t frames; /* handled: run or dropped */
    uint16_t late;
    uint16_t dropped;
    uint64_t next;      /* the next frame's scheduled time, ticks after the start */
    uint32_t rng_state; /* after the last gap */
    uint32_t busy;      /* backlog carried out */
} proto_stream_result_t;

/* Reads the sample timer (wraps at 2^32). */
typedef uint32_t (*proto_ticks_fn)(void *ctx);
/* One iteration of the application loop with Invoke (RUN mode 0): PROTO_E_OK and its invoke
 * ticks, or an error code. */
typedef int (*proto_frame_fn)(void *ctx, uint32_t *invoke, proto_error_t *err);

/* Parses the 24 request bytes (the length is the caller's check). */
void proto_stream_parse(const uint8_t *p, proto_stream_request_t *req);
/* -ln(v / 2^24) for v in 1..2^24, in double. */
double proto_stream_neg_ln(uint32_t v);
/* The ticks to the next frame: period (fixed), or an exponential gap of mean period drawn from
 * the xorshift32 *state (0 stands for 0x9E3779B9), which it advances. */
uint64_t proto_stream_gap(uint8_t arrivals, uint32_t period, uint32_t *state);
/* Runs the batch (the request already checked): one record per frame into records (count * 17
 * bytes), the totals into out. On a frame's error, out holds the frames handled before it and
 * their records are valid. ticks and frame both get ctx. */
int proto_stream_run(const proto_stream_request_t *req, proto_ticks_fn ticks, proto_frame_fn frame, void *ctx,
                     uint8_t *records, proto_stream_result_t *out, proto_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
