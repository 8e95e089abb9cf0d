/* Unit tests of the portable protocol layer: CRCs, SHA-256, frame layout, the streaming parser's
 * resynchronisation, and command dispatch through a small in-test backend.
 *
 * Expected bytes and values come from the Python reference (device_agents/wire/serial_frames.py),
 * so these tests pin byte compatibility, not only self-consistency. Exit status 0 = all passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/proto_crc.h"
#include "../proto/proto_device.h"
#include "../proto/proto_fmt.h"
#include "../proto/proto_frame.h"
#include "../proto/proto_sha256.h"

static int g_failed, g_checks;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        g_checks++;                                                                                          \
        if (!(cond)) {                                                                                       \
            g_failed++;                                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
        }                                                                                                    \
    } while (0)

static uint32_t g_rng = 1;
static uint32_t rnd(void)
{
    g_rng = g_rng * 1103515245u + 12345u;
    return g_rng >> 8;
}

/* ------------------------------------------------------------------ checksums and layout */

static void test_check_values(void)
{
    static const uint8_t digits[] = "123456789";
    uint8_t d[32];
    static const uint8_t abc_sha[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    static const uint8_t empty_sha_head[4] = {0xe3, 0xb0, 0xc4, 0x42};
    /* 56 bytes: padding spills into a second block. */
    static const char two_block[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    static const uint8_t two_block_head[4] = {0x24, 0x8d, 0x6a, 0x61};
    proto_sha256_t s;
    CHECK(proto_crc16(digits, 9, 0xFFFFu) == 0x29B1u);
    CHECK(proto_crc32(digits, 9, 0) == 0xCBF43926u);
    CHECK(proto_crc32(digits + 4, 5, proto_crc32(digits, 4, 0)) == 0xCBF43926u); /* streaming */
    proto_sha256((const uint8_t *)"abc", 3, d);
    CHECK(memcmp(d, abc_sha, 32) == 0);
    proto_sha256(NULL, 0, d);
    CHECK(memcmp(d, empty_sha_head, 4) == 0);
    proto_sha256((const uint8_t *)two_block, 56, d);
    CHECK(memcmp(d, two_block_head, 4) == 0);
    proto_sha256_init(&s); /* split updates give the same digest */
    proto_sha256_update(&s, (const uint8_t *)two_block, 13);
    proto_sha256_update(&s, (const uint8_t *)two_block + 13, 43);
    proto_sha256_final(&s, d);
    CHECK(memcmp(d, two_block_head, 4) == 0);
}

static void test_frame_layout(void)
{
    /* sf.encode(T.PING, 7, b"abc") */
    static const uint8_t want[] = {0xa5, 0x5a, 0x01, 0x0c, 0x07, 0x03, 0x00, 0x50,
                                   0x8e, 0x61, 0x62, 0x63, 0x7a, 0x9d, 0xba, 0xcc};
    uint8_t out[32];
    CHECK(proto_encode(out, sizeof out, PROTO_T_PING, 7, (const uint8_t *)"abc", 3) == sizeof want);
    CHECK(memcmp(out, want, sizeof want) == 0);
    CHECK(proto_encode(out, 15, PROTO_T_PING, 7, (const uint8_t *)"abc", 3) == 0); /* does not fit */
}

static void test_fmt(void)
{
    char b[8];
    CHECK(proto_fmt(b, sizeof b, "%u-%s", 42u, "abcdefgh") == 7);
    CHECK(strcmp(b, "42-abcd") == 0);
    CHECK(proto_fmt(b, sizeof b, "%lu%%", 1234567ul) == 7 && strcmp(b, "1234567") == 0);
    /* Truncation never ends inside a UTF-8 character: "ab" + two 3-byte euro signs is 8 bytes,
     * 7 fit, the second euro sign is dropped whole. */
    CHECK(proto_fmt(b, sizeof b, "%s", "ab\xE2\x82\xAC\xE2\x82\xAC") == 5 && strcmp(b, "ab\xE2\x82\xAC") == 0);
    CHECK(proto_fmt(b, sizeof b, "%s", "abcd\xC3\xA9\xC3\xA9") == 6 && strcmp(b, "abcd\xC3\xA9") == 0);
    CHECK(proto_fmt(b, 4, "%s", "\xF0\x9F\x98\x80") == 0 && b[0] == '\0'); /* a 4-byte character */
}

/* ------------------------------------------------------------------ parser */

#define MAXP 300u
static uint8_t g_pbuf[PROTO_FRAME_BUF(MAXP)];

struct got {
    int n;
    uint8_t type[64], seq[64];
    uint16_t len[64];
    uint8_t kind[64];
    uint8_t payload0[64];
};

static void collect(proto_parser_t *p, struct got *g)
{
    proto_event_t ev;
    while (proto_parser_next(p, &ev)) {
        if (g->n < 64) {
            g->type[g->n] = ev.type;
            g->seq[g->n] = ev.seq;
            g->len[g->n] = ev.length;
            g->kind[g->n] = (uint8_t)ev.kind;
            g->payload0[g->n] = (ev.kind == PROTO_EV_FRAME && ev.length) ? ev.payload[0] : 0;
        }
        g->n++;
    }
}

static void feed_all(proto_parser_t *p, const uint8_t *d, uint32_t n, struct got *g)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        proto_parser_push(p, d[i]);
        collect(p, g);
    }
}

static void flush_idle(proto_parser_t *p, struct got *g)
{
    while (proto_parser_pending(p)) {
        proto_parser_drop_partial(p);
        collect(p, g);
    }
}

static uint32_t make_frames(uint8_t *wire, int count, uint8_t *types, uint16_t *lens)
{
    uint32_t at = 0;
    int i;
    for (i = 0; i < count; i++) {
        uint8_t payload[MAXP];
        uint16_t len = (uint16_t)(rnd() % 200u), k;
        for (k = 0; k < len; k++)
            payload[k] = (uint8_t)rnd();
        if (len)
            payload[0] = (uint8_t)(0xA5); /* sync-like bytes inside payloads must not confuse it */
        types[i] = (uint8_t)(1 + i);
        lens[i] = len;
        at += proto_encode(wire + at, 100000u - at, types[i], (uint8_t)i, payload, len);
    }
    return at;
}

static void test_parser_round_trip_and_faults(void)
{
    static uint8_t wire[100000], bad[100000];
    uint8_t types[8];
    uint16_t lens[8];
    proto_parser_t p;
    int round;
    CHECK(proto_parser_init(&p, g_pbuf, sizeof g_pbuf - 1, MAXP) == -1); /* buffer too small */
    CHECK(proto_parser_init(&p, g_pbuf, sizeof g_pbuf, 63) == -1);
    for (round = 0; round < 300; round++) {
        struct got g;
        uint32_t n = make_frames(wire, 5, types, lens), i, pos, m, start[6], at = 0;
        int victim, fault, k;
        memset(&g, 0, sizeof g);
        CHECK(proto_parser_init(&p, g_pbuf, sizeof g_pbuf, MAXP) == 0);
        feed_all(&p, wire, n, &g);
        CHECK(g.n == 5 && p.discarded == 0 && proto_parser_pending(&p) == 0);
        for (k = 0; k < 5 && k < g.n; k++)
            CHECK(g.type[k] == types[k] && g.len[k] == lens[k] && g.kind[k] == PROTO_EV_FRAME);

        /* Noise between frames costs nothing but the noise. */
        memset(&g, 0, sizeof g);
        proto_parser_clear(&p);
        for (k = 0, at = 0, m = 0; k < 5; k++) {
            uint32_t fl = 13u + lens[k], j, junk = rnd() % 20u;
            for (j = 0; j < junk; j++)
                bad[m++] = (uint8_t)((rnd() & 1) ? 0xA5 : rnd());
            memcpy(bad + m, wire + at, fl);
            m += fl;
            at += fl;
        }
        feed_all(&p, bad, m, &g);
        flush_idle(&p, &g);
        {
            int frames = 0;
            for (k = 0; k < g.n && k < 64; k++)
                frames += g.kind[k] == PROTO_EV_FRAME;
            CHECK(frames >= 5);
            CHECK(g.n >= 5 && g.type[g.n - 1] == types[4]);
        }

        /* Drop, duplicate or flip one byte of one frame: only that frame is lost. */
        for (k = 0, at = 0; k < 5; k++) {
            start[k] = at;
            at += 13u + lens[k];
        }
        start[5] = at;
        victim = (int)(rnd() % 5u);
        fault = (int)(rnd() % 3u);
        pos = start[victim] + rnd() % (start[victim + 1] - start[victim]);
        memcpy(bad, wire, pos);
        if (fault == 0) { /* drop */
            memcpy(bad + pos, wire + pos + 1, n - pos - 1);
            m = n - 1;
        } else if (fault == 1) { /* duplicate */
            bad[pos] = wire[pos];
            memcpy(bad + pos + 1, wire + pos, n - pos);
            m = n + 1;
        } else { /* flip */
            memcpy(bad + pos, wire + pos, n - pos);
            bad[pos] ^= (uint8_t)(1u << (rnd() % 8u));
            m = n;
        }
        memset(&g, 0, sizeof g);
        proto_parser_clear(&p);
        feed_all(&p, bad, m, &g);
        flush_idle(&p, &g);
        {
            /* Delivered frames minus the victim must be exactly the others, in order. */
            int seen = 0, want = 0;
            for (i = 0; i < (uint32_t)g.n && i < 64; i++) {
                if (g.kind[i] != PROTO_EV_FRAME || g.seq[i] == victim)
                    continue;
                if (want == victim)
                    want++;
                CHECK(g.seq[i] == want);
                want++;
                seen++;
            }
            CHECK(seen == 4);
        }
    }
}

static void test_parser_rejections(void)
{
    proto_parser_t p;
    struct got g;
    uint8_t f[64];
    uint32_t n;
    memset(&g, 0, sizeof g);
    proto_parser_init(&p, g_pbuf, sizeof g_pbuf, 64);
    /* Version 2 header: rejected after 9 bytes, payload rescanned as noise. */
    n = proto_encode(f, sizeof f, PROTO_T_PING, 9, (const uint8_t *)"xy", 2);
    f[2] = 2;
    proto_put_u16(f + 7, proto_crc16(f, 7, 0xFFFFu));
    feed_all(&p, f, n, &g);
    CHECK(g.n == 1 && g.kind[0] == PROTO_EV_BAD_VERSION && g.seq[0] == 9);
    /* LEN 65 > max 64: rejected from the header alone. */
    memset(&g, 0, sizeof g);
    f[0] = 0xA5; f[1] = 0x5A; f[2] = 1; f[3] = 0x0C; f[4] = 3;
    proto_put_u16(f + 5, 65);
    proto_put_u16(f + 7, proto_crc16(f, 7, 0xFFFFu));
    feed_all(&p, f, 9, &g);
    CHECK(g.n == 1 && g.kind[0] == PROTO_EV_TOO_LONG && g.len[0] == 65);
    CHECK(proto_parser_pending(&p) == 0);
    /* A lone trailing A5 is kept; other noise is not. */
    memset(&g, 0, sizeof g);
    f[0] = 0x00; f[1] = 0xA5;
    feed_all(&p, f, 2, &g);
    CHECK(g.n == 0 && proto_parser_pending(&p) == 1);
    flush_idle(&p, &g);
    CHECK(proto_parser_pending(&p) == 0);
}

/* ------------------------------------------------------------------ device dispatch */

/* A backend with four inputs of different dtypes, to pin RANDOM_INPUT against the Python
 * reference, and one int8 output. */
static uint8_t in0[4], in1[12], in2[4], in3[16], out0[3], store[256];
static uint32_t store_size;
static int runs;

static void mb_info(void *ctx, proto_info_t *o)
{
    (void)ctx;
    memset(o, 0, sizeof *o);
    o->timer_hz = 1000000u;
    o->timer_resolution_ns = 1000u;
    o->arena_bytes = 1000u;
    o->max_model_bytes = sizeof store;
    o->flags = PROTO_FLAG_EMULATED;
    o->board = "unit";
    o->cpu = "test";
    o->tflm_version = "none";
}
static int mb_begin(void *c, uint32_t n, proto_error_t *e) { (void)c; (void)e; store_size = n; return 0; }
static int mb_write(void *c, uint32_t off, const uint8_t *d, uint32_t n, proto_error_t *e)
{
    (void)c; (void)e;
    memcpy(store + off, d, n);
    return 0;
}
static const uint8_t *mb_data(void *c) { (void)c; return store; }
static int mb_load(void *c, int builtin, proto_model_t *m, proto_error_t *e)
{
    (void)c; (void)e; (void)builtin;
    m->model = store;
    m->model_bytes = store_size;
    m->arena_used_bytes = store[0] == 0xEE ? 5000u : 100u; /* 0xEE: pretend the model is too big */
    m->n_inputs = 4;
    m->n_outputs = 1;
    m->n_ops = 1;
    return 0;
}
static int mb_tensor(void *c, int which, uint8_t i, proto_tensor_t *t, proto_error_t *e)
{
    static const uint8_t dt[4] = {PROTO_DT_INT8, PROTO_DT_FLOAT32, PROTO_DT_INT16, PROTO_DT_INT64};
    static const uint32_t by[4] = {4, 12, 4, 16};
    (void)c; (void)e;
    t->ndims = 1;
    t->dtype = which ? PROTO_DT_INT8 : dt[i];
    t->bytes = which ? 3u : by[i];
    t->dims[0] = (int32_t)(which ? 3 : by[i]);
    t->name = which ? "out" : "in";
    return 0;
}
static uint8_t *mb_staged(void *c, uint8_t i)
{
    uint8_t *t[4] = {in0, in1, in2, in3};
    (void)c;
    return t[i];
}
static int mb_run(void *c, uint8_t mode, uint16_t count, proto_samples_t *rows, proto_error_t *e)
{
    uint16_t i;
    (void)c; (void)e;
    runs++;
    for (i = 0; i < count; i++)
        proto_samples_put(rows, 10u + i, 1u, mode == 0 ? 8u : 0u, 1u);
    out0[0] = 1; out0[1] = 2; out0[2] = 3;
    return 0;
}
static const uint8_t *mb_out(void *c, uint8_t i) { (void)c; (void)i; return out0; }

static uint8_t g_wire[20000];
static uint32_t g_wire_len;
static void capture(void *io, const uint8_t *d, uint32_t n)
{
    (void)io;
    if (g_wire_len + n <= sizeof g_wire) {
        memcpy(g_wire + g_wire_len, d, n);
        g_wire_len += n;
    }
}

static proto_device_t g_dev;

/* Sends one request, returns the reply's type and copies its payload into out. */
static int request(uint8_t type, uint8_t seq, const uint8_t *payload, uint16_t len, uint8_t *out, uint16_t *olen)
{
    static uint8_t f[PROTO_FRAME_BUF(PROTO_MAX_PAYLOAD)];
    uint32_t n = proto_encode(f, sizeof f, type, seq, payload, len), i;
    g_wire_len = 0;
    for (i = 0; i < n; i++)
        proto_device_rx(&g_dev, f[i]);
    if (g_wire_len < PROTO_OVERHEAD)
        return -1;
    *olen = proto_get_u16(g_wire + 5);
    if ((uint32_t)*olen + PROTO_OVERHEAD != g_wire_len || g_wire[4] != seq)
        return -2;
    memcpy(out, g_wire + PROTO_HEADER_SIZE, *olen);
    return g_wire[3];
}

static void test_device(void)
{
    proto_backend_t b;
    uint8_t out[PROTO_MAX_PAYLOAD], req[64];
    uint16_t olen;
    memset(&b, 0, sizeof b);
    b.info = mb_info;
    b.upload_begin = mb_begin;
    b.upload_write = mb_write;
    b.upload_data = mb_data;
    b.load = mb_load;
    b.tensor = mb_tensor;
    b.staged_input = mb_staged;
    b.run = mb_run;
    b.output_data = mb_out;
    CHECK(proto_device_init(&g_dev, &b, capture, NULL, 63) == -1);
    CHECK(proto_device_init(&g_dev, &b, capture, NULL, 256) == 0);
    g_wire_len = 0;
    proto_device_boot(&g_dev);
    CHECK(g_wire_len == 15 && g_wire[3] == PROTO_T_BOOT && g_wire[4] == 0);

    /* Before HELLO the reply limit is 64: a long error message is cut to fit. */
    CHECK(request(0x42, 1, NULL, 0, out, &olen) == PROTO_T_ERROR && proto_get_u16(out) == PROTO_E_UNKNOWN_TYPE);
    CHECK(olen <= 64);
    CHECK(request(PROTO_T_RUN, 2, (const uint8_t *)"\0\0\1", 3, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_BAD_LENGTH && proto_get_u32(out + 3) == 4);
    CHECK(request(PROTO_T_RUN, 3, (const uint8_t *)"\0\0\1\0", 4, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_BAD_STATE);

    proto_put_u16(req, 4000); /* more than our 256: replies stay within 256 */
    CHECK(request(PROTO_T_HELLO, 4, req, 2, out, &olen) == (PROTO_T_HELLO | PROTO_T_OK));
    CHECK(proto_get_u16(out) == 1 && proto_get_u16(out + 2) == 256 && proto_get_u16(out + 24) == (256 - 4) / 16);

    /* Upload 40 bytes in two chunks, with a retransmitted chunk in between. */
    memset(store, 0, sizeof store);
    {
        uint8_t model[40], begin[36], chunk[64];
        int i;
        for (i = 0; i < 40; i++)
            model[i] = (uint8_t)(i * 7);
        proto_put_u32(begin, 40);
        proto_sha256(model, 40, begin + 4);
        proto_put_u32(begin, 300);
        CHECK(request(PROTO_T_UPLOAD_BEGIN, 5, begin, 36, out, &olen) == PROTO_T_ERROR &&
              proto_get_u16(out) == PROTO_E_MODEL_TOO_LARGE && proto_get_u32(out + 3) == 256);
        proto_put_u32(begin, 40);
        CHECK(request(PROTO_T_UPLOAD_BEGIN, 6, begin, 36, out, &olen) == 0x82 && proto_get_u32(out) == 252);
        proto_put_u32(chunk, 0);
        memcpy(chunk + 4, model, 25);
        CHECK(request(PROTO_T_UPLOAD_CHUNK, 7, chunk, 29, out, &olen) == 0x83 && proto_get_u32(out) == 25);
        CHECK(request(PROTO_T_UPLOAD_CHUNK, 7, chunk, 29, out, &olen) == 0x83 && proto_get_u32(out) == 25);
        CHECK(g_dev.replays == 1);
        CHECK(request(PROTO_T_UPLOAD_CHUNK, 8, chunk, 29, out, &olen) == 0x83 && proto_get_u32(out) == 25);
        proto_put_u32(chunk, 30); /* a gap: ignored, answered with received */
        CHECK(request(PROTO_T_UPLOAD_CHUNK, 9, chunk, 14, out, &olen) == 0x83 && proto_get_u32(out) == 25);
        proto_put_u32(chunk, 0xFFFFFFF0u); /* offset + D wraps in 32 bits: still refused */
        CHECK(request(PROTO_T_UPLOAD_CHUNK, 10, chunk, 29, out, &olen) == PROTO_T_ERROR &&
              proto_get_u16(out) == PROTO_E_BAD_ARGUMENT);
        CHECK(request(PROTO_T_UPLOAD_END, 11, NULL, 0, out, &olen) == PROTO_T_ERROR &&
              proto_get_u16(out) == PROTO_E_BAD_STATE && proto_get_u32(out + 3) == 25);
        proto_put_u32(chunk, 25);
        memcpy(chunk + 4, model + 25, 15);
        CHECK(request(PROTO_T_UPLOAD_CHUNK, 12, chunk, 19, out, &olen) == 0x83 && proto_get_u32(out) == 40);
        CHECK(request(PROTO_T_UPLOAD_END, 13, NULL, 0, out, &olen) == 0x84);
        CHECK(memcmp(out, begin + 4, 32) == 0 && proto_get_u32(out + 32) == 40 && out[48] == 4);
    }

    /* RANDOM_INPUT(0) matches serial_frames.random_values(0, ...). */
    memcpy(req, "\0\0\0\0", 4);
    CHECK(request(PROTO_T_RANDOM_INPUT, 14, req, 4, out, &olen) == 0x88 && olen == 0);
    {
        static const int8_t want0[4] = {81, -32, 123, 1};
        static const float want1[3] = {0.798444390296936f, 0.9495184421539307f, 0.4542590379714966f};
        float f;
        CHECK(memcmp(in0, want0, 4) == 0);
        memcpy(&f, in1, 4);
        CHECK(f == want1[0]);
        memcpy(&f, in1 + 8, 4);
        CHECK(f == want1[2]);
        CHECK((int16_t)proto_get_u16(in2) == -773 && (int16_t)proto_get_u16(in2 + 2) == -22331);
        CHECK((int32_t)proto_get_u32(in3) == -1252371528 && proto_get_u32(in3 + 4) == 0xFFFFFFFFu);
        CHECK(proto_get_u32(in3 + 8) == 445164014u && proto_get_u32(in3 + 12) == 0);
    }

    /* SET_INPUT bounds, GET_OUTPUT before and after Invoke, RUN retransmission not re-measured. */
    req[0] = 1;
    proto_put_u32(req + 1, 10);
    CHECK(request(PROTO_T_SET_INPUT, 15, req, 8, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_BAD_ARGUMENT && proto_get_u32(out + 3) == 12);
    CHECK(request(PROTO_T_SET_INPUT, 16, req, 7, out, &olen) == 0x87 && proto_get_u32(out) == 12);
    req[0] = 4;
    CHECK(request(PROTO_T_SET_INPUT, 17, req, 7, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_BAD_INDEX && proto_get_u32(out + 3) == 4);
    memcpy(req, "\0\0\0\0\0\0\1", 7);
    CHECK(request(PROTO_T_GET_OUTPUT, 18, req, 7, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_BAD_STATE);
    runs = 0;
    req[0] = 0; req[1] = 0;
    proto_put_u16(req + 2, 15); /* max_batch for a 256-byte reply limit */
    CHECK(request(PROTO_T_RUN, 19, req, 4, out, &olen) == 0x89 && olen == 4 + 15 * 16);
    CHECK(proto_get_u32(out + 4) == 10 && proto_get_u32(out + 4 + 14 * 16) == 24);
    CHECK(request(PROTO_T_RUN, 19, req, 4, out, &olen) == 0x89 && runs == 1);
    proto_put_u16(req + 2, 16);
    req[0] = 2;
    CHECK(request(PROTO_T_RUN, 20, req, 4, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_BAD_ARGUMENT && proto_get_u32(out + 3) == 15);
    memcpy(req, "\0\1\0\0\0\xff\xff", 7);
    CHECK(request(PROTO_T_GET_OUTPUT, 21, req, 7, out, &olen) == 0x8A && olen == 10 && out[8] == 2 && out[9] == 3);
    memcpy(req, "\0\4\0\0\0\xff\xff", 7);
    CHECK(request(PROTO_T_GET_OUTPUT, 22, req, 7, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_BAD_ARGUMENT);
    CHECK(request(PROTO_T_GET_PROFILE, 23, req, 2, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_UNSUPPORTED);
    CHECK(request(PROTO_T_USE_BUILTIN, 24, NULL, 0, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_UNSUPPORTED);

    /* PING longer than the reply limit: refused, never an over-long reply. */
    {
        static uint8_t big[256];
        CHECK(request(PROTO_T_PING, 25, big, 200, out, &olen) == 0x8C && olen == 200);
        proto_put_u16(req, 64);
        CHECK(request(PROTO_T_HELLO, 26, req, 2, out, &olen) == 0x81);
        CHECK(request(PROTO_T_PING, 27, big, 65, out, &olen) == PROTO_T_ERROR &&
              proto_get_u16(out) == PROTO_E_BAD_ARGUMENT && olen <= 64);
    }

    /* Reset mid-upload: the upload is gone. */
    {
        uint8_t begin[36] = {0};
        proto_put_u32(begin, 10);
        CHECK(request(PROTO_T_UPLOAD_BEGIN, 28, begin, 36, out, &olen) == 0x82);
        proto_device_reset(&g_dev);
        memcpy(req, "\0\0\0\0abc", 7);
        CHECK(request(PROTO_T_UPLOAD_CHUNK, 29, req, 7, out, &olen) == PROTO_T_ERROR &&
              proto_get_u16(out) == PROTO_E_BAD_STATE);
    }
}


/* ------------------------------------------------------------------ string cuts (3.1, 5)
 * Expected values follow the spec's rule and the emulator's cut_utf8: strings are cut from their
 * end, tflm_version first, then cpu, then board, each only as much as still needed, and a cut
 * that would split a UTF-8 character drops the whole character. */

static const char *g_names[3];
static const char *g_op_name;
static char g_long_message[260];

static void nb_info(void *ctx, proto_info_t *o)
{
    mb_info(ctx, o);
    o->flags = PROTO_FLAG_EMULATED | PROTO_FLAG_BUILTIN | PROTO_FLAG_PROFILER;
    o->board = g_names[0];
    o->cpu = g_names[1];
    o->tflm_version = g_names[2];
}
static int nb_load(void *c, int builtin, proto_model_t *m, proto_error_t *e)
{
    if (builtin) { /* the built-in model "fails" with a long multi-byte message */
        e->detail = 7;
        proto_fmt(e->message, sizeof e->message, "x%s", g_long_message);
        return PROTO_E_BAD_MODEL;
    }
    mb_load(c, builtin, m, e);
    m->n_ops = 2;
    return 0;
}
static int nb_profile(void *c, uint16_t op, uint32_t *ticks, const char **name, proto_error_t *e)
{
    (void)c; (void)e;
    *ticks = 100u + op;
    *name = g_op_name;
    return 0;
}

static int utf8_ok(const uint8_t *d, uint32_t n)
{
    uint32_t i = 0, k, need;
    while (i < n) {
        if (d[i] < 0x80u)
            need = 0;
        else if ((d[i] & 0xE0u) == 0xC0u)
            need = 1;
        else if ((d[i] & 0xF0u) == 0xE0u)
            need = 2;
        else if ((d[i] & 0xF8u) == 0xF0u)
            need = 3;
        else
            return 0;
        if (n - i - 1u < need)
            return 0;
        for (k = 1; k <= need; k++)
            if ((d[i + k] & 0xC0u) != 0x80u)
                return 0;
        i += need + 1u;
    }
    return 1;
}

static void init_names_device(proto_backend_t *b, uint16_t max_payload)
{
    memset(b, 0, sizeof *b);
    b->info = nb_info;
    b->upload_begin = mb_begin;
    b->upload_write = mb_write;
    b->upload_data = mb_data;
    b->load = nb_load;
    b->tensor = mb_tensor;
    b->staged_input = mb_staged;
    b->run = mb_run;
    b->output_data = mb_out;
    b->profile = nb_profile;
    CHECK(proto_device_init(&g_dev, b, capture, NULL, max_payload) == 0);
}

/* HELLO(limit) on a device with the given names; returns 1 if HELLO_OK carries exactly the
 * expected strings (NULL = unchanged) and is no longer than the limit. */
static int hello_gives(uint16_t limit, const char *board, const char *cpu, const char *tflm, const char *want_board,
                       const char *want_cpu, const char *want_tflm)
{
    static uint8_t seq;
    proto_backend_t b;
    uint8_t out[PROTO_MAX_PAYLOAD], req[2];
    const char *want[3];
    uint16_t olen;
    uint32_t at = 28;
    int i, ok = 1;
    g_names[0] = board;
    g_names[1] = cpu;
    g_names[2] = tflm;
    want[0] = want_board ? want_board : board;
    want[1] = want_cpu ? want_cpu : cpu;
    want[2] = want_tflm ? want_tflm : tflm;
    init_names_device(&b, PROTO_MAX_PAYLOAD);
    proto_put_u16(req, limit);
    if (request(PROTO_T_HELLO, ++seq ? seq : ++seq, req, 2, out, &olen) != (PROTO_T_HELLO | PROTO_T_OK))
        return 0;
    if (olen > limit)
        ok = 0;
    for (i = 0; i < 3 && ok; i++) {
        uint32_t n = out[at];
        if (n != strlen(want[i]) || memcmp(out + at + 1, want[i], n) != 0) {
            fprintf(stderr, "HELLO(%u) string %d: got %u bytes '%.*s', want '%s'\n", (unsigned)limit, i, (unsigned)n,
                    (int)n, (const char *)out + at + 1, want[i]);
            ok = 0;
        }
        at += 1u + n;
    }
    return ok && at == olen;
}

#define E3 "\xE2\x82\xAC" /* U+20AC, 3 bytes */
#define E2 "\xC3\xA9"     /* U+00E9, 2 bytes */
#define E4 "\xF0\x9F\x98\x80" /* U+1F600, 4 bytes */

static void test_hello_cuts(void)
{
    static char a300[301], e2x200[401], a_e3x100[302], longest[260];
    uint16_t limit;
    int i;
    memset(a300, 'a', 300);
    for (i = 0; i < 200; i++)
        memcpy(e2x200 + 2 * i, E2, 2);
    a_e3x100[0] = 'a';
    for (i = 0; i < 100; i++)
        memcpy(a_e3x100 + 1 + 3 * i, E3, 3);

    /* Nothing to cut at a large limit. */
    CHECK(hello_gives(8192, "Arduino Nano 33 BLE", "Cortex-M4F", "0.dev20261023182759-g8f6596d", NULL, NULL, NULL));
    /* 57 bytes of strings, 33 fit at 64: only tflm_version gives way, by the 24 bytes needed. */
    CHECK(hello_gives(64, "Arduino Nano 33 BLE", "Cortex-M4F", "0.dev20261023182759-g8f6596d", NULL, NULL, "0.de"));
    CHECK(hello_gives(65, "Arduino Nano 33 BLE", "Cortex-M4F", "0.dev20261023182759-g8f6596d", NULL, NULL, "0.dev"));
    /* Excess 7 would cut "EEE" (9 bytes) to 2, inside the first character: the whole character
     * goes, and cpu is not touched (the excess is already covered). */
    CHECK(hello_gives(64, "BBBBBBBBBBBBBBBBBBBB", "x" E2 E2 E2 E2 E2, E3 E3 E3, NULL, NULL, ""));
    /* Excess 21: tflm_version (4) goes, cpu gives the other 17 of its 20 bytes, rounded to a
     * character boundary (2 left, not 3). */
    CHECK(hello_gives(64, "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", E2 E2 E2 E2 E2 E2 E2 E2 E2 E2, "v1.2", NULL, E2, ""));
    /* Everything too long: each string first cut to 255 on a boundary (board: 400 bytes of 2-byte
     * characters -> 254), then tflm_version and cpu vanish and board keeps 33 -> 32 bytes. */
    CHECK(hello_gives(64, e2x200, a300, a300, E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2 E2, "", ""));
    /* The 255-byte cut alone: "a" + 3-byte characters, byte 255 is inside one -> 253 bytes. */
    memcpy(longest, a_e3x100, 253);
    longest[253] = '\0';
    CHECK(hello_gives(1024, a_e3x100, "c", "t", longest, NULL, NULL));
    CHECK(hello_gives(1024, "b", "c", a300, NULL, NULL, a300 + 45)); /* 300 x 'a' -> 255 */
    /* A 4-byte character at the cut. */
    CHECK(hello_gives(64, "b", "c", "0123456789012345678901234567890" E4, NULL, NULL, "0123456789012345678901234567890"));

    /* Every limit from 64 to 400: HELLO never fails, the reply fits, the strings are prefixes on
     * character boundaries, cut in the right order, and no more than 3 bytes too much is cut. */
    g_names[0] = a_e3x100;
    g_names[1] = e2x200;
    g_names[2] = "v" E4 E4 E4 E4 E4 E4 E4 E4 E4 E4 E2;
    for (limit = 64; limit <= 400; limit++) {
        proto_backend_t b;
        uint8_t out[PROTO_MAX_PAYLOAD], req[2];
        uint16_t olen;
        uint32_t at = 28, n[3], full[3] = {253, 254, 43}, total;
        init_names_device(&b, PROTO_MAX_PAYLOAD);
        proto_put_u16(req, limit);
        CHECK(request(PROTO_T_HELLO, 1, req, 2, out, &olen) == (PROTO_T_HELLO | PROTO_T_OK));
        CHECK(olen <= limit);
        for (i = 0; i < 3; i++) {
            n[i] = out[at];
            CHECK(n[i] <= full[i] && memcmp(out + at + 1, g_names[i], n[i]) == 0 && utf8_ok(out + at + 1, n[i]));
            at += 1u + n[i];
        }
        CHECK(at == olen);
        total = n[0] + n[1] + n[2];
        CHECK(total + 31u <= limit && total + 31u + 3u >= limit); /* 550 bytes never fit here */
        CHECK(n[0] == full[0] || (n[1] == 0 && n[2] == 0));       /* board only after the others */
        CHECK(n[1] == full[1] || n[2] == 0);
        CHECK(n[1] == 0 || n[1] == full[1] || n[1] % 2 == 0);      /* 2-byte characters: even cuts */
    }

    /* A wrong HELLO keeps the reply limit it found. */
    {
        proto_backend_t b;
        uint8_t out[PROTO_MAX_PAYLOAD], req[3] = {0};
        static uint8_t big[200];
        uint16_t olen;
        init_names_device(&b, PROTO_MAX_PAYLOAD);
        proto_put_u16(req, 300);
        CHECK(request(PROTO_T_HELLO, 1, req, 2, out, &olen) == 0x81);
        proto_put_u16(req, 63);
        CHECK(request(PROTO_T_HELLO, 2, req, 2, out, &olen) == PROTO_T_ERROR &&
              proto_get_u16(out) == PROTO_E_BAD_LENGTH && proto_get_u32(out + 3) == 2);
        CHECK(request(PROTO_T_HELLO, 3, req, 3, out, &olen) == PROTO_T_ERROR &&
              proto_get_u16(out) == PROTO_E_BAD_LENGTH && proto_get_u32(out + 3) == 2);
        CHECK(request(PROTO_T_PING, 4, big, 200, out, &olen) == 0x8C && olen == 200);
        /* A reset brings the limit back to 64. */
        proto_device_reset(&g_dev);
        CHECK(request(PROTO_T_PING, 5, big, 65, out, &olen) == PROTO_T_ERROR &&
              proto_get_u16(out) == PROTO_E_BAD_ARGUMENT && proto_get_u32(out + 3) == 64 && olen <= 64);
        CHECK(request(PROTO_T_PING, 6, big, 64, out, &olen) == 0x8C && olen == 64);
    }
}

/* ERROR text: cut so 8 + N fits the limit, never inside a UTF-8 character. */
static void test_error_text_cuts(void)
{
    static const struct {
        uint16_t hello; /* 0: no HELLO, limit 64 */
        uint8_t want_len;
    } cases[] = {{0, 55}, {64, 55}, {65, 57}, {100, 91}, {207, 199}, {208, 199}, {1024, 199}};
    proto_backend_t b;
    uint8_t out[PROTO_MAX_PAYLOAD], req[2];
    uint16_t olen;
    unsigned k;
    int i;
    /* "x" + 2-byte characters: characters start at odd offsets, so an even cut splits one.
     * proto_fmt already cuts it to 199 of 200 bytes on a boundary. */
    for (i = 0; i < 120; i++)
        memcpy(g_long_message + 2 * i, E2, 2);
    g_long_message[240] = '\0';
    g_names[0] = "b";
    g_names[1] = "c";
    g_names[2] = "t";
    for (k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        init_names_device(&b, PROTO_MAX_PAYLOAD);
        if (cases[k].hello) {
            proto_put_u16(req, cases[k].hello);
            CHECK(request(PROTO_T_HELLO, 1, req, 2, out, &olen) == 0x81);
        }
        CHECK(request(PROTO_T_USE_BUILTIN, 2, NULL, 0, out, &olen) == PROTO_T_ERROR);
        CHECK(proto_get_u16(out) == PROTO_E_BAD_MODEL && out[2] == PROTO_T_USE_BUILTIN && proto_get_u32(out + 3) == 7);
        CHECK(out[7] == cases[k].want_len && olen == 8u + out[7] && out[8] == 'x');
        CHECK(utf8_ok(out + 8, out[7]) && memcmp(out + 9, g_long_message, out[7] - 1u) == 0);
    }
}

/* Fixed request lengths (section 2): BAD_LENGTH, detail = the fixed length, before any other
 * check; GET_PROFILE's order and paging (3.10). */
static void test_lengths_and_profile(void)
{
    static const struct {
        uint8_t type;
        uint8_t len;
    } fixed[] = {{PROTO_T_HELLO, 2},      {PROTO_T_UPLOAD_BEGIN, 36}, {PROTO_T_UPLOAD_END, 0},
                 {PROTO_T_USE_BUILTIN, 0}, {PROTO_T_GET_TENSOR, 2},    {PROTO_T_RANDOM_INPUT, 4},
                 {PROTO_T_RUN, 4},        {PROTO_T_GET_OUTPUT, 7},    {PROTO_T_GET_PROFILE, 2},
                 {PROTO_T_EVAL, 0}};
    static uint8_t zeros[64];
    proto_backend_t b;
    uint8_t out[PROTO_MAX_PAYLOAD], req[8];
    uint16_t olen;
    unsigned k;
    uint8_t seq = 1;
    static char name60[61];
    int i;
    g_names[0] = "b";
    g_names[1] = "c";
    g_names[2] = "t";
    init_names_device(&b, PROTO_MAX_PAYLOAD);
    for (k = 0; k < sizeof fixed / sizeof fixed[0]; k++) {
        CHECK(request(fixed[k].type, seq++, zeros, (uint16_t)(fixed[k].len + 1u), out, &olen) == PROTO_T_ERROR &&
              proto_get_u16(out) == PROTO_E_BAD_LENGTH && proto_get_u32(out + 3) == fixed[k].len &&
              out[2] == fixed[k].type);
        if (fixed[k].len > 0)
            CHECK(request(fixed[k].type, seq++, zeros, (uint16_t)(fixed[k].len - 1u), out, &olen) == PROTO_T_ERROR &&
                  proto_get_u16(out) == PROTO_E_BAD_LENGTH && proto_get_u32(out + 3) == fixed[k].len);
    }
    CHECK(request(PROTO_T_UPLOAD_CHUNK, seq++, zeros, 3, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_BAD_LENGTH && proto_get_u32(out + 3) == 0);
    CHECK(request(PROTO_T_SET_INPUT, seq++, zeros, 4, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_BAD_LENGTH && proto_get_u32(out + 3) == 0);

    /* GET_PROFILE with a profiler: no model, then no Invoke -> BAD_STATE. */
    CHECK(request(PROTO_T_GET_PROFILE, seq++, zeros, 2, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_BAD_STATE);
    {
        uint8_t begin[36], chunk[12] = {0};
        proto_put_u32(begin, 8);
        proto_sha256(chunk + 4, 8, begin + 4);
        CHECK(request(PROTO_T_UPLOAD_BEGIN, seq++, begin, 36, out, &olen) == 0x82);
        CHECK(request(PROTO_T_UPLOAD_CHUNK, seq++, chunk, 12, out, &olen) == 0x83);
        CHECK(request(PROTO_T_UPLOAD_END, seq++, NULL, 0, out, &olen) == 0x84 && proto_get_u16(out + 50) == 2);
    }
    CHECK(request(PROTO_T_GET_PROFILE, seq++, zeros, 2, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_BAD_STATE);
    memcpy(req, "\0\0\1\0", 4);
    CHECK(request(PROTO_T_RUN, seq++, req, 4, out, &olen) == 0x89);
    /* A 60-byte name (multi-byte at the cut) cannot fit one entry at 64 bytes: it gives way to 52
     * bytes -> 51 on a boundary, and paging advances one entry per request. */
    name60[0] = 'N';
    for (i = 0; i < 59; i++)
        name60[1 + i] = i % 2 ? (char)0xA9 : (char)0xC3;
    name60[59] = 'Z';
    g_op_name = name60;
    proto_put_u16(req, 0);
    CHECK(request(PROTO_T_GET_PROFILE, seq++, req, 2, out, &olen) == 0x8B && olen <= 64);
    CHECK(proto_get_u16(out) == 2 && proto_get_u16(out + 2) == 0 && out[4] == 1 && proto_get_u16(out + 5) == 0);
    CHECK(proto_get_u32(out + 7) == 100 && out[11] == 51 && utf8_ok(out + 12, 51) && olen == 12 + 51);
    proto_put_u16(req, 1);
    CHECK(request(PROTO_T_GET_PROFILE, seq++, req, 2, out, &olen) == 0x8B && out[4] == 1 && proto_get_u32(out + 7) == 101);
    proto_put_u16(req, 2); /* first_op == n_ops: count 0 */
    CHECK(request(PROTO_T_GET_PROFILE, seq++, req, 2, out, &olen) == 0x8B && olen == 5 && out[4] == 0 &&
          proto_get_u16(out + 2) == 2);
    proto_put_u16(req, 3);
    CHECK(request(PROTO_T_GET_PROFILE, seq++, req, 2, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_BAD_ARGUMENT && proto_get_u32(out + 3) == 2);
    /* Short names at a larger limit: both entries in one reply. */
    g_op_name = "CONV_2D";
    proto_put_u16(req, 256);
    CHECK(request(PROTO_T_HELLO, seq++, req, 2, out, &olen) == 0x81);
    proto_put_u16(req, 0);
    CHECK(request(PROTO_T_GET_PROFILE, seq++, req, 2, out, &olen) == 0x8B && out[4] == 2 && olen == 5 + 2 * 14);
}

/* ------------------------------------------------------------------ EVAL (3.11)
 * A backend with one int8 input [1, 8] and two outputs, int8 [1, 50] and int16 [1, 20]: 90 output
 * bytes, more than a 64-byte reply carries, so the paging through GET_OUTPUT is exercised. Its
 * eval writes outputs that depend on the staged input and on how often it ran; its run writes a
 * different pattern, so a test can tell which Invoke GET_OUTPUT describes. */

static uint8_t eb_in[8], eb_out0[50], eb_out1[40];
static int eb_evals, eb_mode; /* eb_mode: 0 fine, 1 Invoke fails, 2 the interpreter crashes */

static void eb_info(void *ctx, proto_info_t *o)
{
    mb_info(ctx, o);
    o->flags = PROTO_FLAG_EMULATED | PROTO_FLAG_EVAL; /* claimed: the layer keeps it only with eval */
}
static int eb_load(void *c, int builtin, proto_model_t *m, proto_error_t *e)
{
    mb_load(c, builtin, m, e);
    m->n_inputs = 1;
    m->n_outputs = 2;
    memset(eb_in, 0, sizeof eb_in);
    return 0;
}
static int eb_tensor(void *c, int which, uint8_t i, proto_tensor_t *t, proto_error_t *e)
{
    (void)c; (void)e;
    t->ndims = 2;
    t->dims[0] = 1;
    t->dtype = which == 0 || i == 0 ? PROTO_DT_INT8 : PROTO_DT_INT16;
    t->dims[1] = which == 0 ? 8 : (i == 0 ? 50 : 20);
    t->bytes = which == 0 ? 8u : (i == 0 ? 50u : 40u);
    t->name = which == 0 ? "x" : (i == 0 ? "y0" : "y1");
    return 0;
}
static uint8_t *eb_staged(void *c, uint8_t i) { (void)c; (void)i; return eb_in; }
static const uint8_t *eb_output(void *c, uint8_t i) { (void)c; return i == 0 ? eb_out0 : eb_out1; }
static int eb_run(void *c, uint8_t mode, uint16_t count, proto_samples_t *rows, proto_error_t *e)
{
    uint16_t k;
    (void)c; (void)e;
    for (k = 0; k < count; k++)
        proto_samples_put(rows, 5u, 1u, mode == 0 ? 3u : 0u, 1u);
    memset(eb_out0, 0xAA, sizeof eb_out0);
    memset(eb_out1, 0xBB, sizeof eb_out1);
    return 0;
}
static uint8_t eb_want0(int i, int evals) { return (uint8_t)(eb_in[i % 8] + i + evals); }
static uint16_t eb_want1(int i, int evals) { return (uint16_t)(i * 100 + evals); }
static int eb_eval(void *c, proto_error_t *e)
{
    int i;
    (void)c;
    if (eb_mode == 1) {
        e->detail = 1;
        proto_fmt(e->message, sizeof e->message, "Invoke returned status 1");
        return PROTO_E_INVOKE_FAILED;
    }
    if (eb_mode == 2)
        return PROTO_E_CRASHED;
    eb_evals++;
    for (i = 0; i < 50; i++)
        eb_out0[i] = eb_want0(i, eb_evals);
    for (i = 0; i < 20; i++)
        proto_put_u16(eb_out1 + 2 * i, eb_want1(i, eb_evals));
    return 0;
}

static void init_eval_device(proto_backend_t *b, int with_eval)
{
    memset(b, 0, sizeof *b);
    b->info = eb_info;
    b->upload_begin = mb_begin;
    b->upload_write = mb_write;
    b->upload_data = mb_data;
    b->load = eb_load;
    b->tensor = eb_tensor;
    b->staged_input = eb_staged;
    b->run = eb_run;
    b->output_data = eb_output;
    b->eval = with_eval ? eb_eval : NULL;
    CHECK(proto_device_init(&g_dev, b, capture, NULL, 256) == 0);
}

/* Whether out[0..n) is the concatenated outputs of eval number `evals` from byte `from` on. */
static int eval_bytes(const uint8_t *out, uint32_t from, uint32_t n, int evals)
{
    uint32_t k;
    for (k = from; k < from + n; k++) {
        uint8_t want;
        if (k < 50u)
            want = eb_want0((int)k, evals);
        else
            want = (uint8_t)(eb_want1((int)(k - 50u) / 2, evals) >> (8u * ((k - 50u) % 2u)));
        if (out[k - from] != want)
            return 0;
    }
    return 1;
}

static void test_eval(void)
{
    proto_backend_t b;
    uint8_t out[PROTO_MAX_PAYLOAD], req[16], seq = 1;
    uint16_t olen;
    /* Without a backend eval: flag EVAL is not claimed, EVAL is UNSUPPORTED whatever the state,
     * after BAD_LENGTH. */
    init_eval_device(&b, 0);
    proto_put_u16(req, 256);
    CHECK(request(PROTO_T_HELLO, seq++, req, 2, out, &olen) == 0x81 && !(proto_get_u16(out + 26) & PROTO_FLAG_EVAL));
    CHECK(request(PROTO_T_EVAL, seq++, req, 1, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_BAD_LENGTH && proto_get_u32(out + 3) == 0);
    CHECK(request(PROTO_T_EVAL, seq++, NULL, 0, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_UNSUPPORTED && out[2] == PROTO_T_EVAL);

    init_eval_device(&b, 1);
    eb_evals = eb_mode = 0;
    proto_put_u16(req, 64);
    CHECK(request(PROTO_T_HELLO, seq++, req, 2, out, &olen) == 0x81 && (proto_get_u16(out + 26) & PROTO_FLAG_EVAL));
    CHECK(request(PROTO_T_EVAL, seq++, NULL, 0, out, &olen) == PROTO_T_ERROR && proto_get_u16(out) == PROTO_E_BAD_STATE);
    {
        uint8_t begin[36], chunk[12] = {0};
        proto_put_u32(begin, 8);
        proto_sha256(chunk + 4, 8, begin + 4);
        CHECK(request(PROTO_T_UPLOAD_BEGIN, seq++, begin, 36, out, &olen) == 0x82);
        CHECK(request(PROTO_T_UPLOAD_CHUNK, seq++, chunk, 12, out, &olen) == 0x83);
        CHECK(request(PROTO_T_UPLOAD_END, seq++, NULL, 0, out, &olen) == 0x84 && out[49] == 2);
    }
    memcpy(req, "\0\0\0\0\0\1\2\3\4\5\6\7\x08", 13);
    CHECK(request(PROTO_T_SET_INPUT, seq++, req, 13, out, &olen) == 0x87);
    /* At a 64-byte limit: total 90, the 60 bytes that fit (all of y0, 10 of y1). */
    CHECK(request(PROTO_T_EVAL, seq, NULL, 0, out, &olen) == (PROTO_T_EVAL | PROTO_T_OK));
    CHECK(olen == 64 && proto_get_u32(out) == 90 && eval_bytes(out + 4, 0, 60, 1) && eb_evals == 1);
    /* A retransmission is answered from memory: no second Invoke. */
    CHECK(request(PROTO_T_EVAL, seq++, NULL, 0, out, &olen) == 0x8D && olen == 64 && eb_evals == 1);
    /* The rest of y1 through GET_OUTPUT, which now describes the EVAL. */
    req[0] = 1;
    proto_put_u32(req + 1, 10);
    proto_put_u16(req + 5, 0xFFFF);
    CHECK(request(PROTO_T_GET_OUTPUT, seq++, req, 7, out, &olen) == 0x8A && olen == 8 + 30);
    CHECK(proto_get_u32(out) == 40 && proto_get_u32(out + 4) == 10 && eval_bytes(out + 8, 60, 30, 1));
    /* At 256 everything fits. */
    proto_put_u16(req, 256);
    CHECK(request(PROTO_T_HELLO, seq++, req, 2, out, &olen) == 0x81);
    CHECK(request(PROTO_T_EVAL, seq++, NULL, 0, out, &olen) == 0x8D && olen == 94 && eval_bytes(out + 4, 0, 90, 2));
    /* A RUN's Invoke is the last one now; then an EVAL's again. */
    memcpy(req, "\0\0\1\0", 4);
    CHECK(request(PROTO_T_RUN, seq++, req, 4, out, &olen) == 0x89);
    memcpy(req, "\0\0\0\0\0\xff\xff", 7);
    CHECK(request(PROTO_T_GET_OUTPUT, seq++, req, 7, out, &olen) == 0x8A && out[8] == 0xAA);
    CHECK(request(PROTO_T_EVAL, seq++, NULL, 0, out, &olen) == 0x8D && eb_evals == 3);
    CHECK(request(PROTO_T_GET_OUTPUT, seq++, req, 7, out, &olen) == 0x8A && eval_bytes(out + 8, 0, 50, 3));
    /* A failing Invoke is reported and keeps the model; a crash unloads it. */
    eb_mode = 1;
    CHECK(request(PROTO_T_EVAL, seq++, NULL, 0, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_INVOKE_FAILED && proto_get_u32(out + 3) == 1 && out[7] > 0);
    CHECK(request(PROTO_T_GET_TENSOR, seq++, (const uint8_t *)"\1\1", 2, out, &olen) == 0x86);
    eb_mode = 2;
    CHECK(request(PROTO_T_EVAL, seq++, NULL, 0, out, &olen) == PROTO_T_ERROR && proto_get_u16(out) == PROTO_E_CRASHED);
    CHECK(request(PROTO_T_GET_TENSOR, seq++, (const uint8_t *)"\1\1", 2, out, &olen) == PROTO_T_ERROR &&
          proto_get_u16(out) == PROTO_E_BAD_STATE);
    eb_mode = 0;
    CHECK(request(PROTO_T_EVAL, seq++, NULL, 0, out, &olen) == PROTO_T_ERROR && proto_get_u16(out) == PROTO_E_BAD_STATE);
}

int main(void)
{
    test_check_values();
    test_frame_layout();
    test_fmt();
    test_parser_round_trip_and_faults();
    test_parser_rejections();
    test_device();
    test_hello_cuts();
    test_error_text_cuts();
    test_lengths_and_profile();
    test_eval();
    if (g_failed) {
        fprintf(stderr, "test_proto: %d of %d checks FAILED\n", g_failed, g_checks);
        return 1;
    }
    printf("test_proto: all %d checks passed\n", g_checks);
    return 0;
}
