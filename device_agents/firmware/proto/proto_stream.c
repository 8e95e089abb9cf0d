/* STREAM batches; see proto_stream.h and SERIAL_PROTOCOL.md 3.12. */
#include "proto_stream.h"

#include <string.h>

#include "proto_wire.h"

/* ln 2 split so that k * LN2_HI is exact for |k| < 2^20 (fdlibm's constants). */
#define LN2_HI 6.93147180369123816490e-01
#define LN2_LO 1.90821492927058770002e-10
#define SQRT2 1.41421356237309504880

void proto_stream_parse(const uint8_t *p, proto_stream_request_t *req)
{
    req->arrivals = p[0];
    req->policy = p[1];
    req->count = proto_get_u16(p + 2);
    req->period = proto_get_u32(p + 4);
    req->deadline = proto_get_u32(p + 8);
    req->work = proto_get_u32(p + 12);
    req->rng_state = proto_get_u32(p + 16);
    req->busy = proto_get_u32(p + 20);
}

/* v = 2^n * m with m in [sqrt(1/2), sqrt(2)), both exact (halving a double is exact), so
 * -ln(v / 2^24) = (24 - n) ln 2 - ln m, and ln m = 2 atanh(s) with s = (m - 1) / (m + 1):
 * m - 1 and m + 1 are exact (m has at most 25 significant bits), s is one rounding, |s| <= 0.1716,
 * and the odd series of atanh reaches s^29 / 29 < 1e-22 of s in 14 terms. No cancellation: for
 * n = 24 the first term is 0, below that it is at least ln 2 against |ln m| <= ln(2) / 2. */
/* 1/3, 1/5, ..., 1/29, each correctly rounded by the compiler: no division at run time. */
static const double inv_odd[14] = {1.0 / 3,  1.0 / 5,  1.0 / 7,  1.0 / 9,  1.0 / 11, 1.0 / 13, 1.0 / 15,
                                   1.0 / 17, 1.0 / 19, 1.0 / 21, 1.0 / 23, 1.0 / 25, 1.0 / 27, 1.0 / 29};

double proto_stream_neg_ln(uint32_t v)
{
    double m = (double)v, s, s2, series, ln_m, k;
    int n = 0, i;
    while (m >= SQRT2) {
        m *= 0.5;
        n++;
    }
    s = (m - 1.0) / (m + 1.0);
    s2 = s * s;
    series = 0.0; /* 1/3 + s2/5 + s2^2/7 + ... by Horner, smallest terms first */
    for (i = 13; i >= 0; i--)
        series = inv_odd[i] + s2 * series;
    ln_m = 2.0 * s + 2.0 * s * (s2 * series);
    k = (double)(24 - n);
    return k * LN2_HI + (k * LN2_LO - ln_m);
}

static uint32_t xorshift32(uint32_t *state)
{
    uint32_t x = *state ? *state : 0x9E3779B9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

uint64_t proto_stream_gap(uint8_t arrivals, uint32_t period, uint32_t *state)
{
    uint32_t v;
    if (arrivals == PROTO_ARRIVALS_FIXED)
        return period;
    v = (xorshift32(state) >> 8) + 1u; /* u = v / 2^24, uniform in (0, 1] */
    /* floor(x + 0.5) of a non-negative x is its truncation: at most 16.64 * period < 2^36 */
    return (uint64_t)(proto_stream_neg_ln(v) * (double)period + 0.5);
}

/* The device's clock for one batch: ticks since its start, wider than the 32-bit timer (every
 * read adds the wrapped difference since the last one; reads are far less than 2^32 apart). */
struct clock {
    proto_ticks_fn ticks;
    void *ctx;
    uint32_t last;
    uint64_t elapsed;
};

static uint64_t clock_now(struct clock *c)
{
    uint32_t t = c->ticks(c->ctx);
    c->elapsed += (uint32_t)(t - c->last);
    c->last = t;
    return c->elapsed;
}

static uint32_t sat32(uint64_t v)
{
    return v > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)v;
}

static void put_record(uint8_t *rec, uint64_t sched, uint64_t start, uint64_t end, uint32_t invoke, uint8_t flags)
{
    proto_put_u32(rec, sat32(sched));
    proto_put_u32(rec + 4, sat32(start));
    proto_put_u32(rec + 8, sat32(end));
    proto_put_u32(rec + 12, invoke);
    rec[16] = flags;
}

int proto_stream_run(const proto_stream_request_t *req, proto_ticks_fn ticks, proto_frame_fn frame, void *ctx,
                     uint8_t *records, proto_stream_result_t *out, proto_error_t *err)
{
    struct clock c;
    uint64_t sched = 0, free_at = req->busy, now;
    uint32_t state = req->rng_state;
    uint16_t i;
    int rc = PROTO_E_OK;
    memset(out, 0, sizeof *out);
    c.ticks = ticks;
    c.ctx = ctx;
    c.elapsed = 0;
    c.last = ticks(ctx);
    for (i = 0; i < req->count; i++) {
        uint8_t *rec = records + (uint32_t)i * PROTO_STREAM_RECORD_BYTES;
        uint64_t ready = sched > free_at ? sched : free_at, start;
        if (i > 0 && (sched >= PROTO_STREAM_LIMIT || clock_now(&c) >= PROTO_STREAM_LIMIT))
            break;
        do /* the frame's arrival, and the device free: a busy wait on the timer */
            now = clock_now(&c);
        while (now < ready);
        start = now;
        if (req->policy == PROTO_POLICY_DROP_LATE && start - sched > req->deadline) {
            put_record(rec, sched, start, start, 0, PROTO_STREAM_DROPPED); /* stale: never run */
            out->dropped++;
        } else {
            uint32_t invoke = 0;
            uint64_t end;
            uint8_t flags;
            while (req->work && now - start < req->work) /* the application's work */
                now = clock_now(&c);
            rc = frame(ctx, &invoke, err);
            if (rc != PROTO_E_OK)
                break;
            end = clock_now(&c);
            flags = end - sched > req->deadline ? PROTO_STREAM_LATE : 0u;
            put_record(rec, sched, start, end, invoke, flags);
            out->late = (uint16_t)(out->late + flags);
            free_at = end;
        }
        out->frames = (uint16_t)(i + 1u);
        sched += proto_stream_gap(req->arrivals, req->period, &state);
    }
    out->next = sched;
    out->rng_state = state;
    out->busy = free_at > sched ? sat32(free_at - sched) : 0u;
    return rc;
}
