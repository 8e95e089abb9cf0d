/* Fuzz driver: feeds arbitrary bytes to the device-side parser and command dispatch.
 *
 * Build it with -fsanitize=address,undefined (Makefile target fuzz_driver_asan) or with
 * clang -fsanitize=fuzzer (libFuzzer, -DFUZZ_LIBFUZZER). Every input runs on a freshly reset
 * device with the host-c-stub backend, so command handling is fuzzed, not only framing.
 *
 * Input grammar, first byte decides:
 *   even  -> raw mode: the remaining bytes go to the device one by one, then the inter-byte
 *            timeout fires (drop_partial path). Used by the pytest hypothesis streams.
 *   odd   -> structured mode: byte 1 picks max_payload, then a list of ops, each
 *            op = next byte % 8:
 *              0-2 raw:      n = next byte, then n raw bytes
 *              3   frame:    type, seq, u16 len, payload -> one valid frame (len may exceed
 *                            max_payload to reach FRAME_TOO_LONG)
 *              4   idle:     inter-byte timeout
 *              5   reset:    reset button + BOOT
 *              6   upload:   u16 n, n model bytes (bytes 4..7 forced to "TFL3" when op bit 3 is
 *                            set) -> UPLOAD_BEGIN with the right SHA-256 (one bit off when op
 *                            bit 4 is set), chunks, UPLOAD_END, so the fuzzer reaches the
 *                            model-loaded state it cannot hash its way into, and HASH_MISMATCH
 *              7   mutated:  like 3, then flip / drop / duplicate one byte before sending
 *
 * Invariants checked on every reply (abort() on violation, which the sanitizers and libFuzzer
 * report): it is exactly one intact frame of version 1, its payload is no longer than the reply
 * limit in force, and its type is a reply type; it is never ERROR INTERNAL (a firmware bug with
 * this backend); HELLO_OK's strings and ERROR's message are valid UTF-8. The stub's board, cpu
 * and tflm_version are long and multi-byte (106 bytes against the 33 a 64-byte limit leaves), so
 * every HELLO below a 137-byte limit exercises the cuts of SERIAL_PROTOCOL.md 3.1.
 *
 * Without libFuzzer: `fuzz_driver < input` runs one input; `fuzz_driver --serve` reads inputs
 * framed as u32 little-endian length + bytes from stdin and writes one byte 'K' per input done.
 *
 * `fuzz_driver --events MAX_PAYLOAD` is the differential mode: each length-prefixed input goes
 * byte by byte through the parser alone, then the inter-byte timeout flushes it, and every event
 * is printed as one line ("F type seq len crc", "V type seq len" for a bad version, "L type seq
 * len" for too long), then "END". The tests compare this with serial_frames.Decoder.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/proto_crc.h"
#include "../proto/proto_device.h"
#include "../proto/proto_sha256.h"
#include "stub_backend.h"

#define FUZZ_MAX_MODEL 8192u
#define FUZZ_RAW_MAX_PAYLOAD 256u

static proto_device_t g_dev;
static stub_backend_t g_stub;
static proto_backend_t g_backend;
static uint8_t g_store[FUZZ_MAX_MODEL];
static uint8_t g_frame[PROTO_MAX_PAYLOAD_V1 + 64u + PROTO_OVERHEAD + 1u];
static uint8_t g_payload[PROTO_MAX_PAYLOAD_V1 + 64u];
static uint32_t g_clock;

static uint32_t fake_now(void)
{
    /* A deterministic clock: fuzzing needs reproducible runs, not real time. Each read moves it
     * 2^20 + 1 ticks, so a STREAM batch reaches its 2^31-tick limit (and the longest work spin
     * its end) within a few thousand reads, however long the schedule an input asks for. */
    return g_clock += 0x100001u;
}

/* Whether d[0..n) is well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF). */
static int utf8_valid(const uint8_t *d, uint32_t n)
{
    uint32_t i = 0, k, need;
    while (i < n) {
        uint32_t c = d[i];
        if (c < 0x80u) {
            i++;
            continue;
        }
        if (c >= 0xC2u && c <= 0xDFu)
            need = 1, c &= 0x1Fu;
        else if (c >= 0xE0u && c <= 0xEFu)
            need = 2, c &= 0x0Fu;
        else if (c >= 0xF0u && c <= 0xF4u)
            need = 3, c &= 0x07u;
        else
            return 0;
        if (n - i - 1u < need)
            return 0;
        for (k = 1; k <= need; k++) {
            if ((d[i + k] & 0xC0u) != 0x80u)
                return 0;
            c = (c << 6) | (d[i + k] & 0x3Fu);
        }
        if ((need == 2 && (c < 0x800u || (c >= 0xD800u && c <= 0xDFFFu))) || (need == 3 && (c < 0x10000u || c > 0x10FFFFu)))
            return 0;
        i += need + 1u;
    }
    return 1;
}

/* Checks the str8 at p[*at..n) and moves *at past it; 0 if it runs past n or is not UTF-8. */
static int str8_ok(const uint8_t *p, uint32_t n, uint32_t *at)
{
    uint32_t len;
    if (*at >= n)
        return 0;
    len = p[*at];
    if (n - *at - 1u < len || !utf8_valid(p + *at + 1u, len))
        return 0;
    *at += 1u + len;
    return 1;
}

static void check_reply(void *io, const uint8_t *data, uint32_t len)
{
    proto_device_t *dev = (proto_device_t *)io;
    uint16_t plen;
    (void)dev;
    if (len < PROTO_OVERHEAD || data[0] != PROTO_SYNC0 || data[1] != PROTO_SYNC1 || data[2] != PROTO_VERSION)
        abort();
    plen = proto_get_u16(data + 5);
    if ((uint32_t)plen + PROTO_OVERHEAD != len)
        abort();
    if (plen > g_dev.reply_limit || plen > g_dev.max_payload)
        abort();
    if (proto_crc16(data, 7, 0xFFFFu) != proto_get_u16(data + 7))
        abort();
    if (proto_crc32(data, len - 4u, 0) != proto_get_u32(data + len - 4u))
        abort();
    if (!(data[3] & PROTO_T_OK))
        abort();
    if (data[3] == PROTO_T_ERROR) {
        const uint8_t *p = data + PROTO_HEADER_SIZE;
        uint32_t at = 7;
        if (plen < 8u || proto_get_u16(p) == PROTO_E_INTERNAL || !str8_ok(p, plen, &at) || at != plen)
            abort();
    } else if (data[3] == (PROTO_T_HELLO | PROTO_T_OK)) {
        const uint8_t *p = data + PROTO_HEADER_SIZE;
        uint32_t at = 28;
        if (!str8_ok(p, plen, &at) || !str8_ok(p, plen, &at) || !str8_ok(p, plen, &at) || at != plen)
            abort();
    }
}

static void feed(const uint8_t *p, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++)
        proto_device_rx(&g_dev, p[i]);
}

static void device_start(uint16_t max_payload)
{
    stub_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.now = fake_now;
    cfg.timer_hz = 1000000000u;
    cfg.timer_resolution_ns = 1;
    cfg.board = "fuzz board \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"; /* 30 bytes */
    cfg.cpu = "host \xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC"
              "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC"; /* 35 bytes */
    cfg.tflm_version = "v\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80"
                       "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xC3\xA9\xC3\xA9"; /* 41 */
    cfg.model_store = g_store;
    cfg.max_model_bytes = FUZZ_MAX_MODEL;
    cfg.work_per_invoke = 64;
    g_clock = 0;
    stub_backend_init(&g_stub, &cfg, &g_backend);
    if (proto_device_init(&g_dev, &g_backend, check_reply, &g_dev, max_payload) != 0)
        abort();
    proto_device_boot(&g_dev);
}

static void send_frame(uint8_t type, uint8_t seq, const uint8_t *payload, uint16_t len)
{
    uint32_t n = proto_encode(g_frame, sizeof g_frame, type, seq, payload, len);
    feed(g_frame, n);
}

struct cursor {
    const uint8_t *p;
    size_t n;
};

static uint8_t take_u8(struct cursor *c)
{
    uint8_t v = 0;
    if (c->n) {
        v = c->p[0];
        c->p++;
        c->n--;
    }
    return v;
}

static uint32_t take_bytes(struct cursor *c, uint8_t *out, uint32_t want)
{
    uint32_t n = want < c->n ? want : (uint32_t)c->n;
    if (n)
        memcpy(out, c->p, n);
    c->p += n;
    c->n -= n;
    return n;
}

static void op_upload(struct cursor *c, uint8_t op, uint8_t *seq)
{
    uint8_t begin[36];
    uint32_t size, got, off, chunk;
    size = take_u8(c);
    size |= (uint32_t)take_u8(c) << 8; /* separate statements: argument order is unspecified */
    if (size > FUZZ_MAX_MODEL)
        size = FUZZ_MAX_MODEL;
    got = take_bytes(c, g_payload, size);
    if (got == 0)
        return;
    if ((op & 8u) && got >= 8u)
        memcpy(g_payload + 4, "TFL3", 4);
    /* g_payload holds the model; chunks are built in g_frame's payload area by proto_encode. */
    proto_put_u32(begin, got);
    proto_sha256(g_payload, got, begin + 4);
    if (op & 16u)
        begin[4] ^= 1u;
    send_frame(PROTO_T_UPLOAD_BEGIN, ++*seq, begin, 36);
    chunk = g_dev.max_payload - 4u;
    for (off = 0; off < got; off += chunk) {
        static uint8_t msg[PROTO_MAX_PAYLOAD_V1];
        uint32_t n = got - off < chunk ? got - off : chunk;
        proto_put_u32(msg, off);
        memcpy(msg + 4, g_payload + off, n);
        send_frame(PROTO_T_UPLOAD_CHUNK, ++*seq, msg, (uint16_t)(n + 4u));
    }
    send_frame(PROTO_T_UPLOAD_END, ++*seq, NULL, 0);
}

static void op_frame(struct cursor *c, int mutate)
{
    uint8_t type = take_u8(c), seq = take_u8(c);
    uint32_t len, n, total;
    len = take_u8(c);
    len |= (uint32_t)take_u8(c) << 8;
    len %= (uint32_t)g_dev.max_payload + 64u;
    n = take_bytes(c, g_payload, len);
    total = proto_encode(g_frame, sizeof g_frame, type, seq, g_payload, (uint16_t)n);
    if (mutate && total) {
        uint32_t pos;
        uint8_t how;
        pos = take_u8(c);
        pos = (pos | ((uint32_t)take_u8(c) << 8)) % total;
        how = take_u8(c);
        switch (how % 3u) {
        case 0:
            g_frame[pos] ^= (uint8_t)(1u << (how >> 5));
            break;
        case 1: /* drop */
            memmove(g_frame + pos, g_frame + pos + 1, total - pos - 1);
            total--;
            break;
        default: /* duplicate: g_frame has one spare byte */
            memmove(g_frame + pos + 1, g_frame + pos, total - pos);
            total++;
            break;
        }
    }
    feed(g_frame, total);
}

static void fuzz_one(const uint8_t *data, size_t size)
{
    struct cursor c;
    uint8_t seq = 0;
    if (size == 0)
        return;
    c.p = data + 1;
    c.n = size - 1;
    if ((data[0] & 1u) == 0) {
        device_start(FUZZ_RAW_MAX_PAYLOAD);
        feed(c.p, (uint32_t)c.n);
        proto_device_idle(&g_dev);
        return;
    }
    {
        uint32_t mp = 64u + 16u * (uint32_t)take_u8(&c);
        device_start((uint16_t)(mp > PROTO_MAX_PAYLOAD ? PROTO_MAX_PAYLOAD : mp));
    }
    while (c.n) {
        uint8_t op = take_u8(&c);
        switch (op % 8u) {
        case 0:
        case 1:
        case 2: {
            uint32_t n = take_u8(&c);
            n = n < c.n ? n : (uint32_t)c.n;
            feed(c.p, n);
            c.p += n;
            c.n -= n;
            break;
        }
        case 3:
            op_frame(&c, 0);
            break;
        case 4:
            proto_device_idle(&g_dev);
            break;
        case 5:
            proto_device_reset(&g_dev);
            proto_device_boot(&g_dev);
            break;
        case 6:
            op_upload(&c, op, &seq);
            break;
        default:
            op_frame(&c, 1);
            break;
        }
    }
    proto_device_idle(&g_dev);
}

#ifndef FUZZ_LIBFUZZER
static void print_event(const proto_event_t *ev)
{
    if (ev->kind == PROTO_EV_FRAME)
        printf("F %u %u %u %lu\n", (unsigned)ev->type, (unsigned)ev->seq, (unsigned)ev->length,
               (unsigned long)ev->crc);
    else
        printf("%c %u %u %u\n", ev->kind == PROTO_EV_BAD_VERSION ? 'V' : 'L', (unsigned)ev->type,
               (unsigned)ev->seq, (unsigned)ev->length);
}

/* Parser events for data[0..size), flushed by the inter-byte timeout at the end. */
static void events_one(const uint8_t *data, size_t size, uint16_t max_payload)
{
    static uint8_t buf[PROTO_FRAME_BUF(PROTO_MAX_PAYLOAD_V1)];
    proto_parser_t p;
    proto_event_t ev;
    size_t i;
    if (proto_parser_init(&p, buf, sizeof buf, max_payload) != 0)
        abort();
    for (i = 0; i < size; i++) {
        proto_parser_push(&p, data[i]);
        while (proto_parser_next(&p, &ev))
            print_event(&ev);
    }
    while (proto_parser_pending(&p)) {
        proto_parser_drop_partial(&p);
        while (proto_parser_next(&p, &ev))
            print_event(&ev);
    }
    printf("END\n");
    fflush(stdout);
}
#endif

#ifdef FUZZ_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_one(data, size);
    return 0;
}
#else
static uint8_t g_input[1u << 20];

static int read_input(uint32_t *len)
{
    uint8_t head[4];
    if (fread(head, 1, 4, stdin) != 4)
        return 0;
    *len = proto_get_u32(head);
    if (*len > sizeof g_input) {
        fprintf(stderr, "fuzz_driver: input of %lu bytes exceeds %lu\n", (unsigned long)*len,
                (unsigned long)sizeof g_input);
        return -1;
    }
    return fread(g_input, 1, *len, stdin) == *len ? 1 : -1;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "--events") == 0) {
        long mp = strtol(argv[2], NULL, 10);
        uint32_t len;
        int rc;
        if (mp < (long)PROTO_MIN_PAYLOAD || mp > (long)PROTO_MAX_PAYLOAD_V1)
            return 2;
        while ((rc = read_input(&len)) == 1)
            events_one(g_input, len, (uint16_t)mp);
        return rc == 0 ? 0 : 2;
    }
    if (argc > 1 && strcmp(argv[1], "--serve") == 0) {
        for (;;) {
            uint8_t head[4];
            uint32_t len;
            if (fread(head, 1, 4, stdin) != 4)
                return 0;
            len = proto_get_u32(head);
            if (len > sizeof g_input) {
                fprintf(stderr, "fuzz_driver: input of %lu bytes exceeds %lu\n", (unsigned long)len,
                        (unsigned long)sizeof g_input);
                return 2;
            }
            if (fread(g_input, 1, len, stdin) != len)
                return 2;
            fuzz_one(g_input, len);
            fputc('K', stdout);
            fflush(stdout);
        }
    }
    {
        size_t n = fread(g_input, 1, sizeof g_input, stdin);
        fuzz_one(g_input, n);
    }
    return 0;
}
#endif
