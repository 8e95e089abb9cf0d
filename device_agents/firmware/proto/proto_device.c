/* Command dispatch of serial protocol v1; see proto_device.h and SERIAL_PROTOCOL.md sections 2-5.
 *
 * Every length, offset and index from the wire is checked here, in 64-bit arithmetic where a
 * sum could wrap, before a backend sees it. Replies are built through struct reply, whose writers
 * refuse to go past the reply limit: a reply that would not fit becomes ERROR INTERNAL instead of
 * an overflow or an over-long frame.
 */
#include "proto_device.h"

#include <string.h>

#include "proto_fmt.h"
#include "proto_sha256.h"

struct reply {
    uint8_t *p;   /* payload start inside dev->tx */
    uint32_t cap; /* reply limit in bytes */
    uint32_t len;
    int overflow;
};

struct proto_samples {
    struct reply *r;
    uint16_t capacity;
    uint16_t count;
};

static void put_bytes(struct reply *r, const void *data, uint32_t n)
{
    if (r->overflow || n > r->cap - r->len) {
        r->overflow = 1;
        return;
    }
    if (n)
        memcpy(r->p + r->len, data, n);
    r->len += n;
}

static void put_u8(struct reply *r, uint8_t v)
{
    put_bytes(r, &v, 1);
}

static void put_u16(struct reply *r, uint16_t v)
{
    uint8_t b[2];
    proto_put_u16(b, v);
    put_bytes(r, b, 2);
}

static void put_u32(struct reply *r, uint32_t v)
{
    uint8_t b[4];
    proto_put_u32(b, v);
    put_bytes(r, b, 4);
}

static uint32_t str_len(const char *s, uint32_t max)
{
    uint32_t n = 0;
    if (s == NULL)
        return 0;
    while (n < max && s[n] != '\0')
        n++;
    return n;
}

/* The length of s[0..len) cut to at most limit bytes without splitting a UTF-8 character: the
 * cut moves back while the first dropped byte is a continuation byte (10xxxxxx), so a cut
 * character is dropped whole (SERIAL_PROTOCOL.md 3.1 and 5). */
static uint32_t utf8_cut(const char *s, uint32_t len, uint32_t limit)
{
    uint32_t cut;
    if (len <= limit)
        return len;
    cut = limit;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0u) == 0x80u)
        cut--;
    return cut;
}

/* Bytes of s a str8 carries: at most 255, cut on a character boundary. */
static uint32_t str8_len(const char *s)
{
    return utf8_cut(s, str_len(s, 256), 255);
}

static void put_str8n(struct reply *r, const char *s, uint32_t n)
{
    put_u8(r, (uint8_t)n);
    put_bytes(r, s, n);
}

static void put_str8(struct reply *r, const char *s)
{
    put_str8n(r, s, str8_len(s));
}

int proto_samples_put(proto_samples_t *s, uint32_t loop, uint32_t set_input, uint32_t invoke,
                      uint32_t get_output)
{
    if (s == NULL || s->count >= s->capacity)
        return -1;
    put_u32(s->r, loop);
    put_u32(s->r, set_input);
    put_u32(s->r, invoke);
    put_u32(s->r, get_output);
    s->count++;
    return 0;
}

static void send_raw(proto_device_t *dev, const uint8_t *data, uint32_t len)
{
    if (len)
        dev->write(dev->io, data, len);
}

/* Builds an ERROR payload at payload[0..) within cap bytes; returns its length. The message is
 * cut at its end to what fits (never inside a UTF-8 character), so an error is never longer than
 * the host accepts; code, request_type and detail are never cut. */
static uint32_t error_payload(uint8_t *payload, uint32_t cap, uint16_t code, uint8_t req_type, uint32_t detail,
                              const char *message)
{
    uint32_t limit, n;
    if (cap < 8u)
        return 0; /* never: every limit is >= 64 */
    limit = cap - 8u < PROTO_MAX_ERROR_MESSAGE ? cap - 8u : PROTO_MAX_ERROR_MESSAGE;
    n = utf8_cut(message, str_len(message, limit + 1u), limit);
    proto_put_u16(payload, code);
    payload[2] = req_type;
    proto_put_u32(payload + 3, detail);
    payload[7] = (uint8_t)n;
    if (n)
        memcpy(payload + 8, message, n);
    return 8u + n;
}

/* An ERROR frame in aux (rejected headers): keeps the remembered reply in tx intact. */
static void send_aux_error(proto_device_t *dev, uint8_t seq, uint8_t req_type, uint16_t code, uint32_t detail,
                           const char *message)
{
    uint32_t cap = sizeof dev->aux - PROTO_OVERHEAD;
    uint32_t n;
    if (cap > dev->reply_limit)
        cap = dev->reply_limit;
    n = error_payload(dev->aux + PROTO_HEADER_SIZE, cap, code, req_type, detail, message);
    send_raw(dev, dev->aux, proto_frame_seal(dev->aux, sizeof dev->aux, PROTO_VERSION, PROTO_T_ERROR, seq,
                                             (uint16_t)n));
}

int proto_device_init(proto_device_t *dev, const proto_backend_t *backend, proto_write_fn write, void *io,
                      uint16_t max_payload)
{
    if (dev == NULL || backend == NULL || write == NULL || backend->info == NULL)
        return -1;
    memset(dev, 0, sizeof *dev);
    if (max_payload < PROTO_MIN_PAYLOAD || max_payload > PROTO_MAX_PAYLOAD)
        return -1;
    if (proto_parser_init(&dev->parser, dev->rx, sizeof dev->rx, max_payload) != 0)
        return -1;
    dev->backend = backend;
    dev->write = write;
    dev->io = io;
    dev->max_payload = max_payload;
    dev->reply_limit = PROTO_MIN_PAYLOAD;
    backend->info(backend->ctx, &dev->info);
    if (dev->info.timer_resolution_ns == 0)
        dev->info.timer_resolution_ns = 1;
    /* Flag EVAL says what this layer can answer, so a backend cannot claim it without eval. */
    if (backend->eval != NULL)
        dev->info.flags |= PROTO_FLAG_EVAL;
    else
        dev->info.flags &= (uint16_t)~PROTO_FLAG_EVAL;
    /* Likewise flag STREAM: the schedule needs the backend's timer (and room for records). */
    if (backend->ticks != NULL && backend->run != NULL && PROTO_STREAM_MAX_FRAMES > 0u)
        dev->info.flags |= PROTO_FLAG_STREAM;
    else
        dev->info.flags &= (uint16_t)~PROTO_FLAG_STREAM;
    return 0;
}

void proto_device_reset(proto_device_t *dev)
{
    proto_parser_clear(&dev->parser);
    dev->reply_limit = PROTO_MIN_PAYLOAD;
    dev->have_last = 0;
    dev->tx_len = 0;
    dev->uploading = 0;
    dev->up_size = dev->up_received = 0;
    dev->loaded = dev->invoked = 0;
    dev->stream_frames = 0;
    memset(&dev->model, 0, sizeof dev->model);
    if (dev->backend->reset)
        dev->backend->reset(dev->backend->ctx);
}

void proto_device_boot(proto_device_t *dev)
{
    uint8_t version[2];
    proto_put_u16(version, PROTO_VERSION);
    send_raw(dev, dev->aux, proto_encode(dev->aux, sizeof dev->aux, PROTO_T_BOOT, 0, version, 2));
}

uint32_t proto_device_pending(const proto_device_t *dev)
{
    return proto_parser_pending(&dev->parser);
}

static uint16_t max_batch(const proto_device_t *dev)
{
    uint32_t limit = dev->reply_limit < dev->max_payload ? dev->reply_limit : dev->max_payload;
    uint32_t rows = (limit - 4u) / (4u * PROTO_SAMPLE_FIELDS);
    if (dev->info.max_batch && rows > dev->info.max_batch)
        rows = dev->info.max_batch;
    if (rows > 0xFFFFu)
        rows = 0xFFFFu;
    return (uint16_t)(rows ? rows : 1u);
}

static int unload(proto_device_t *dev)
{
    dev->loaded = dev->invoked = 0;
    dev->stream_frames = 0; /* a stream's records belong to the model that ran them */
    memset(&dev->model, 0, sizeof dev->model);
    return 0;
}

#define FAIL(code, det, ...)                                                                                 \
    do {                                                                                                     \
        err->detail = (uint32_t)(det);                                                                       \
        proto_fmt(err->message, sizeof err->message, __VA_ARGS__);                                           \
        return (code);                                                                                       \
    } while (0)

#define NEED_LEN(n)                                                                                          \
    do {                                                                                                     \
        if (len != (n))                                                                                      \
            FAIL(PROTO_E_BAD_LENGTH, (n), "payload of %u bytes, this request carries %u", (unsigned)len,   \
                 (unsigned)(n));                                                                             \
    } while (0)

#define NEED_MODEL()                                                                                         \
    do {                                                                                                     \
        if (!dev->loaded)                                                                                    \
            FAIL(PROTO_E_BAD_STATE, 0, "no model loaded");                                                   \
    } while (0)

static int on_hello(proto_device_t *dev, const uint8_t *p, uint32_t len, struct reply *r, proto_error_t *err)
{
    uint16_t limit;
    const proto_info_t *in = &dev->info;
    if (len != 2u)
        FAIL(PROTO_E_BAD_LENGTH, 2, "HELLO carries u16 host_max_payload >= 64");
    limit = proto_get_u16(p);
    if (limit < PROTO_MIN_PAYLOAD)
        FAIL(PROTO_E_BAD_LENGTH, 2, "HELLO carries u16 host_max_payload >= 64, got %u", (unsigned)limit);
    if (limit > PROTO_MAX_PAYLOAD_V1)
        limit = PROTO_MAX_PAYLOAD_V1;
    if (limit > dev->max_payload) /* never reply longer than our own max_payload either */
        limit = dev->max_payload;
    dev->reply_limit = limit;
    r->cap = limit;
    put_u16(r, PROTO_VERSION);
    put_u16(r, dev->max_payload);
    put_u32(r, in->cpu_hz);
    put_u32(r, in->timer_hz);
    put_u32(r, in->timer_resolution_ns);
    put_u32(r, in->arena_bytes);
    put_u32(r, in->max_model_bytes);
    put_u16(r, max_batch(dev));
    put_u16(r, in->flags);
    /* Section 3.1: HELLO_OK fits the limit HELLO just set (>= 64), so a valid HELLO never fails:
     * the strings give way, tflm_version first, then cpu, then board, each only as much as still
     * needed, never inside a UTF-8 character. */
    {
        const char *s[3];
        uint32_t n[3], budget, total, excess;
        int i;
        s[0] = in->board;
        s[1] = in->cpu;
        s[2] = in->tflm_version;
        for (i = 0; i < 3; i++)
            n[i] = str8_len(s[i]);
        budget = r->cap - r->len - 3u; /* 28 fixed bytes and three str8 length bytes */
        total = n[0] + n[1] + n[2];
        excess = total > budget ? total - budget : 0;
        for (i = 2; i >= 0 && excess > 0; i--) {
            uint32_t keep = utf8_cut(s[i], n[i], n[i] > excess ? n[i] - excess : 0);
            excess -= (n[i] - keep < excess) ? n[i] - keep : excess;
            n[i] = keep;
        }
        for (i = 0; i < 3; i++)
            put_str8n(r, s[i], n[i]);
    }
    return 0;
}

static int on_ping(proto_device_t *dev, const uint8_t *p, uint32_t len, struct reply *r, proto_error_t *err)
{
    if (len > r->cap)
        FAIL(PROTO_E_BAD_ARGUMENT, dev->reply_limit, "PING of %u bytes is longer than the host accepts (%u)",
             (unsigned)len, (unsigned)dev->reply_limit);
    put_bytes(r, p, len);
    return 0;
}

static int on_upload_begin(proto_device_t *dev, const uint8_t *p, uint32_t len, struct reply *r,
                           proto_error_t *err)
{
    const proto_backend_t *b = dev->backend;
    uint32_t size;
    int rc;
    NEED_LEN(36u);
    size = proto_get_u32(p);
    dev->uploading = 0;
    unload(dev);
    if (dev->info.max_model_bytes == 0 || b->upload_begin == NULL || b->upload_write == NULL ||
        b->upload_data == NULL)
        FAIL(PROTO_E_UNSUPPORTED, 0, "this firmware does not accept model uploads");
    if (size == 0)
        FAIL(PROTO_E_BAD_ARGUMENT, 0, "model_bytes is 0");
    if (size > dev->info.max_model_bytes)
        FAIL(PROTO_E_MODEL_TOO_LARGE, dev->info.max_model_bytes,
             "model of %lu bytes exceeds the %lu bytes this device accepts", (unsigned long)size,
             (unsigned long)dev->info.max_model_bytes);
    rc = b->upload_begin(b->ctx, size, err);
    if (rc != PROTO_E_OK)
        return rc;
    dev->uploading = 1;
    dev->up_size = size;
    dev->up_received = 0;
    memcpy(dev->up_sha256, p + 4, 32);
    put_u32(r, (uint32_t)dev->max_payload - 4u);
    return 0;
}

static int on_upload_chunk(proto_device_t *dev, const uint8_t *p, uint32_t len, struct reply *r,
                           proto_error_t *err)
{
    const proto_backend_t *b = dev->backend;
    uint32_t offset, n;
    if (len < 4u)
        FAIL(PROTO_E_BAD_LENGTH, 0, "UPLOAD_CHUNK of %u bytes has no u32 offset", (unsigned)len);
    offset = proto_get_u32(p);
    n = len - 4u;
    if (!dev->uploading)
        FAIL(PROTO_E_BAD_STATE, 0, "no upload in progress (did the device reset?)");
    if (n == 0 || (uint64_t)offset + n > dev->up_size)
        FAIL(PROTO_E_BAD_ARGUMENT, dev->up_size, "chunk at %lu+%lu is outside the %lu-byte model",
             (unsigned long)offset, (unsigned long)n, (unsigned long)dev->up_size);
    if (offset == dev->up_received) {
        int rc = b->upload_write(b->ctx, offset, p + 4, n, err);
        if (rc != PROTO_E_OK)
            return rc;
        dev->up_received += n;
    }
    /* An old chunk (a retransmission) or a gap is ignored: the host continues from received. */
    put_u32(r, dev->up_received);
    return 0;
}

static int finish_load(proto_device_t *dev, int builtin, struct reply *r, proto_error_t *err)
{
    const proto_backend_t *b = dev->backend;
    proto_model_t m;
    int rc;
    memset(&m, 0, sizeof m);
    unload(dev);
    if (b->load == NULL)
        FAIL(PROTO_E_UNSUPPORTED, 0, "this firmware cannot load models");
    rc = b->load(b->ctx, builtin, &m, err);
    if (rc != PROTO_E_OK)
        return rc;
    if (m.model == NULL && m.model_bytes != 0)
        FAIL(PROTO_E_INTERNAL, 0, "backend reported a model without its bytes");
    if (m.arena_used_bytes != PROTO_UNKNOWN_U32 && m.arena_used_bytes > dev->info.arena_bytes)
        FAIL(PROTO_E_ARENA_TOO_SMALL, m.arena_used_bytes, "model needs %lu arena bytes, arena is %lu",
             (unsigned long)m.arena_used_bytes, (unsigned long)dev->info.arena_bytes);
    proto_sha256(m.model, m.model_bytes, dev->model_sha256);
    dev->model = m;
    dev->loaded = 1;
    put_bytes(r, dev->model_sha256, 32);
    put_u32(r, m.model_bytes);
    put_u32(r, dev->info.arena_bytes);
    put_u32(r, m.arena_used_bytes);
    put_u32(r, m.init_ticks);
    put_u8(r, m.n_inputs);
    put_u8(r, m.n_outputs);
    put_u16(r, m.n_ops);
    return 0;
}

static int on_upload_end(proto_device_t *dev, const uint8_t *p, uint32_t len, struct reply *r,
                         proto_error_t *err)
{
    uint8_t digest[32];
    const uint8_t *stored;
    (void)p;
    if (len != 0)
        FAIL(PROTO_E_BAD_LENGTH, 0, "UPLOAD_END has no payload");
    if (!dev->uploading || dev->up_received != dev->up_size)
        FAIL(PROTO_E_BAD_STATE, dev->uploading ? dev->up_received : 0, "upload incomplete: %lu of %lu bytes",
             (unsigned long)(dev->uploading ? dev->up_received : 0), (unsigned long)dev->up_size);
    dev->uploading = 0;
    /* Hash what was stored, not what was received: a failed flash or RAM write shows up here. */
    stored = dev->backend->upload_data(dev->backend->ctx);
    if (stored == NULL)
        FAIL(PROTO_E_INTERNAL, 0, "backend lost the uploaded model");
    proto_sha256(stored, dev->up_size, digest);
    if (memcmp(digest, dev->up_sha256, 32) != 0)
        FAIL(PROTO_E_HASH_MISMATCH, 0, "SHA-256 of the received model differs from UPLOAD_BEGIN's");
    return finish_load(dev, 0, r, err);
}

static int on_use_builtin(proto_device_t *dev, const uint8_t *p, uint32_t len, struct reply *r,
                          proto_error_t *err)
{
    (void)p;
    NEED_LEN(0u);
    dev->uploading = 0;
    if (!(dev->info.flags & PROTO_FLAG_BUILTIN))
        FAIL(PROTO_E_UNSUPPORTED, 0, "no model is built into this firmware");
    return finish_load(dev, 1, r, err);
}

static int get_tensor(proto_device_t *dev, int which, uint8_t index, proto_tensor_t *t, proto_error_t *err)
{
    int rc;
    memset(t, 0, sizeof *t);
    rc = dev->backend->tensor(dev->backend->ctx, which, index, t, err);
    if (rc != PROTO_E_OK)
        return rc;
    if (t->ndims > PROTO_MAX_DIMS)
        FAIL(PROTO_E_INTERNAL, t->ndims, "tensor %u has %u dimensions, the protocol carries 8",
             (unsigned)index, (unsigned)t->ndims);
    return 0;
}

static int on_get_tensor(proto_device_t *dev, const uint8_t *p, uint32_t len, struct reply *r,
                         proto_error_t *err)
{
    proto_tensor_t t;
    uint8_t which, index, n, i;
    uint32_t bits;
    int rc;
    NEED_LEN(2u);
    NEED_MODEL();
    which = p[0];
    index = p[1];
    n = which == 0 ? dev->model.n_inputs : dev->model.n_outputs;
    if (which > 1 || index >= n)
        FAIL(PROTO_E_BAD_INDEX, n, "no %s tensor %u (which %u)", which == 0 ? "input" : "output",
             (unsigned)index, (unsigned)which);
    rc = get_tensor(dev, which, index, &t, err);
    if (rc != PROTO_E_OK)
        return rc;
    put_u8(r, t.dtype);
    put_u8(r, t.ndims);
    for (i = 0; i < t.ndims; i++)
        put_u32(r, (uint32_t)t.dims[i]);
    memcpy(&bits, &t.scale, 4);
    put_u32(r, bits);
    put_u32(r, (uint32_t)t.zero_point);
    put_u32(r, t.bytes);
    put_str8(r, t.name);
    return 0;
}

static int on_set_input(proto_device_t *dev, const uint8_t *p, uint32_t len, struct reply *r,
                        proto_error_t *err)
{
    proto_tensor_t t;
    uint32_t offset, n;
    uint8_t index, *dst;
    int rc;
    if (len < 5u)
        FAIL(PROTO_E_BAD_LENGTH, 0, "SET_INPUT of %u bytes has no u8 index and u32 offset", (unsigned)len);
    index = p[0];
    offset = proto_get_u32(p + 1);
    n = len - 5u;
    NEED_MODEL();
    if (index >= dev->model.n_inputs)
        FAIL(PROTO_E_BAD_INDEX, dev->model.n_inputs, "no input %u", (unsigned)index);
    rc = get_tensor(dev, 0, index, &t, err);
    if (rc != PROTO_E_OK)
        return rc;
    if ((uint64_t)offset + n > t.bytes)
        FAIL(PROTO_E_BAD_ARGUMENT, t.bytes, "input %u holds %lu bytes, not %lu+%lu", (unsigned)index,
             (unsigned long)t.bytes, (unsigned long)offset, (unsigned long)n);
    dst = dev->backend->staged_input(dev->backend->ctx, index);
    if (dst == NULL)
        FAIL(PROTO_E_INTERNAL, 0, "backend has no staged copy of input %u", (unsigned)index);
    if (n)
        memcpy(dst + offset, p + 5, n);
    put_u32(r, offset + n);
    return 0;
}

static uint32_t xorshift32(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

static uint32_t dtype_size(uint8_t dtype)
{
    switch (dtype) {
    case PROTO_DT_INT8:
    case PROTO_DT_UINT8:
    case PROTO_DT_BOOL:
        return 1;
    case PROTO_DT_INT16:
        return 2;
    case PROTO_DT_INT32:
    case PROTO_DT_FLOAT32:
        return 4;
    case PROTO_DT_INT64:
        return 8;
    default:
        return 0; /* float16 and others: no random values defined (section 3.7) */
    }
}

static int on_random_input(proto_device_t *dev, const uint8_t *p, uint32_t len, struct reply *r,
                           proto_error_t *err)
{
    proto_tensor_t t;
    uint32_t state, i, size, count;
    uint8_t index, *dst;
    int rc;
    (void)r;
    NEED_LEN(4u);
    NEED_MODEL();
    /* Check every input first, so a refused request changes nothing. */
    for (index = 0; index < dev->model.n_inputs; index++) {
        rc = get_tensor(dev, 0, index, &t, err);
        if (rc != PROTO_E_OK)
            return rc;
        size = dtype_size(t.dtype);
        if (size == 0)
            FAIL(PROTO_E_UNSUPPORTED, t.dtype, "no random values for dtype %u of input %u", (unsigned)t.dtype,
                 (unsigned)index);
        if (t.bytes % size != 0)
            FAIL(PROTO_E_INTERNAL, t.bytes, "input %u: %lu bytes is not a whole number of elements",
                 (unsigned)index, (unsigned long)t.bytes);
        if (dev->backend->staged_input(dev->backend->ctx, index) == NULL)
            FAIL(PROTO_E_INTERNAL, 0, "backend has no staged copy of input %u", (unsigned)index);
    }
    state = proto_get_u32(p);
    if (state == 0)
        state = 0x9E3779B9u;
    for (index = 0; index < dev->model.n_inputs; index++) {
        get_tensor(dev, 0, index, &t, err);
        dst = dev->backend->staged_input(dev->backend->ctx, index);
        size = dtype_size(t.dtype);
        count = t.bytes / size;
        for (i = 0; i < count; i++) {
            uint32_t x = xorshift32(&state);
            uint8_t *e = dst + (size_t)i * size;
            switch (t.dtype) {
            case PROTO_DT_INT8:
            case PROTO_DT_UINT8:
                e[0] = (uint8_t)(x >> 24);
                break;
            case PROTO_DT_BOOL:
                e[0] = (uint8_t)(x >> 31);
                break;
            case PROTO_DT_INT16:
                proto_put_u16(e, (uint16_t)(x >> 16));
                break;
            case PROTO_DT_INT32:
                proto_put_u32(e, x);
                break;
            case PROTO_DT_INT64: /* (i64)(i32)x: sign-extend */
                proto_put_u32(e, x);
                proto_put_u32(e + 4, (x & 0x80000000u) ? 0xFFFFFFFFu : 0u);
                break;
            default: { /* float32: exact, (x >> 8) has 24 bits, like the float's mantissa */
                float f = (float)(((double)(x >> 8) / 16777216.0) * 2.0 - 1.0);
                uint32_t bits;
                memcpy(&bits, &f, 4);
                proto_put_u32(e, bits);
                break;
            }
            }
        }
    }
    return 0;
}

static int on_run(proto_device_t *dev, const uint8_t *p, uint32_t len, struct reply *r, proto_error_t *err)
{
    struct proto_samples rows;
    uint8_t mode;
    uint16_t count, limit;
    int rc;
    NEED_LEN(4u);
    mode = p[0];
    count = proto_get_u16(p + 2);
    NEED_MODEL();
    limit = max_batch(dev);
    if (mode > PROTO_MODE_WITHOUT || count < 1u || count > limit)
        FAIL(PROTO_E_BAD_ARGUMENT, limit, "RUN mode %u count %u: mode is 0 or 1, count 1..%u", (unsigned)mode,
             (unsigned)count, (unsigned)limit);
    put_u8(r, mode);
    put_u8(r, (uint8_t)PROTO_SAMPLE_FIELDS);
    put_u16(r, count);
    rows.r = r;
    rows.capacity = count;
    rows.count = 0;
    rc = dev->backend->run(dev->backend->ctx, mode, count, &rows, err);
    if (rc != PROTO_E_OK) {
        if (rc == PROTO_E_CRASHED)
            unload(dev);
        return rc;
    }
    if (rows.count != count)
        FAIL(PROTO_E_INTERNAL, rows.count, "backend measured %u of %u iterations", (unsigned)rows.count,
             (unsigned)count);
    if (mode == PROTO_MODE_WITH)
        dev->invoked = 1;
    return 0;
}

static int on_get_output(proto_device_t *dev, const uint8_t *p, uint32_t len, struct reply *r,
                         proto_error_t *err)
{
    proto_tensor_t t;
    const uint8_t *data;
    uint32_t offset, n;
    uint16_t max_len;
    uint8_t index;
    int rc;
    NEED_LEN(7u);
    index = p[0];
    offset = proto_get_u32(p + 1);
    max_len = proto_get_u16(p + 5);
    NEED_MODEL();
    if (index >= dev->model.n_outputs)
        FAIL(PROTO_E_BAD_INDEX, dev->model.n_outputs, "no output %u", (unsigned)index);
    if (!dev->invoked)
        FAIL(PROTO_E_BAD_STATE, 0, "no Invoke has run since the model was loaded");
    rc = get_tensor(dev, 1, index, &t, err);
    if (rc != PROTO_E_OK)
        return rc;
    if (offset > t.bytes)
        FAIL(PROTO_E_BAD_ARGUMENT, t.bytes, "offset %lu past the end of output %u (%lu bytes)",
             (unsigned long)offset, (unsigned)index, (unsigned long)t.bytes);
    data = dev->backend->output_data(dev->backend->ctx, index);
    if (data == NULL)
        FAIL(PROTO_E_INTERNAL, 0, "backend has no data for output %u", (unsigned)index);
    n = t.bytes - offset;
    if (n > max_len)
        n = max_len;
    if (n > r->cap - 8u)
        n = r->cap - 8u;
    put_u32(r, t.bytes);
    put_u32(r, offset);
    put_bytes(r, data + offset, n);
    return 0;
}

static int on_get_profile(proto_device_t *dev, const uint8_t *p, uint32_t len, struct reply *r,
                          proto_error_t *err)
{
    uint16_t first, i, n_ops;
    uint32_t count_at;
    uint8_t count = 0;
    NEED_LEN(2u);
    if (!(dev->info.flags & PROTO_FLAG_PROFILER) || dev->backend->profile == NULL)
        FAIL(PROTO_E_UNSUPPORTED, 0, "this firmware has no per-operator profiler");
    NEED_MODEL();
    if (!dev->invoked)
        FAIL(PROTO_E_BAD_STATE, 0, "no Invoke has run since the model was loaded");
    first = proto_get_u16(p);
    n_ops = dev->model.n_ops;
    if (first > n_ops)
        FAIL(PROTO_E_BAD_ARGUMENT, n_ops, "first_op %u past the %u operators", (unsigned)first, (unsigned)n_ops);
    put_u16(r, n_ops);
    put_u16(r, first);
    count_at = r->len;
    put_u8(r, 0);
    for (i = first; i < n_ops && count < 255u; i++) {
        uint32_t ticks = 0, name_len;
        const char *name = NULL;
        int rc = dev->backend->profile(dev->backend->ctx, i, &ticks, &name, err);
        if (rc != PROTO_E_OK)
            return rc;
        name_len = str8_len(name);
        if (r->overflow)
            break;
        if (7u + name_len > r->cap - r->len) {
            if (count > 0)
                break; /* the host asks again from first_op + count */
            /* Not even one entry fits (a name over 52 bytes at a 64-byte limit): its name gives
             * way, as HELLO_OK's strings do, so the host's paging always advances. */
            name_len = utf8_cut(name, name_len, r->cap - r->len - 7u);
        }
        put_u16(r, i);
        put_u32(r, ticks);
        put_str8n(r, name, name_len);
        count++;
    }
    if (!r->overflow)
        r->p[count_at] = count;
    return 0;
}

/* EVAL (section 3.11): the backend's untimed Invoke, then total_bytes and as many output bytes as
 * fit, output 0 first; the host pages the rest with GET_OUTPUT. */
static int on_eval(proto_device_t *dev, const uint8_t *p, uint32_t len, struct reply *r, proto_error_t *err)
{
    proto_tensor_t t;
    uint64_t total = 0;
    uint8_t i;
    int rc;
    (void)p;
    NEED_LEN(0u);
    if (dev->backend->eval == NULL)
        FAIL(PROTO_E_UNSUPPORTED, 0, "this firmware has no EVAL request");
    NEED_MODEL();
    for (i = 0; i < dev->model.n_outputs; i++) {
        rc = get_tensor(dev, 1, i, &t, err);
        if (rc != PROTO_E_OK)
            return rc;
        total += t.bytes;
    }
    if (total > 0xFFFFFFFFu)
        FAIL(PROTO_E_INTERNAL, 0, "outputs of more than 4 GiB");
    rc = dev->backend->eval(dev->backend->ctx, err);
    if (rc != PROTO_E_OK) {
        if (rc == PROTO_E_CRASHED)
            unload(dev);
        return rc;
    }
    dev->invoked = 1;
    put_u32(r, (uint32_t)total);
    for (i = 0; i < dev->model.n_outputs && r->len < r->cap; i++) {
        const uint8_t *data;
        uint32_t n;
        rc = get_tensor(dev, 1, i, &t, err);
        if (rc != PROTO_E_OK)
            return rc;
        data = dev->backend->output_data(dev->backend->ctx, i);
        if (data == NULL)
            FAIL(PROTO_E_INTERNAL, 0, "backend has no data for output %u", (unsigned)i);
        n = r->cap - r->len < t.bytes ? r->cap - r->len : t.bytes;
        put_bytes(r, data, n);
    }
    return 0;
}

/* STREAM (section 3.12). The timer and one frame, for proto_stream_run: a frame is exactly one RUN
 * iteration in mode 0 (the backend's own run, its row kept in a scratch reply, never sent). */
static uint32_t stream_ticks(void *ctx)
{
    const proto_backend_t *b = ((proto_device_t *)ctx)->backend;
    return b->ticks(b->ctx);
}

static int stream_frame(void *ctx, uint32_t *invoke, proto_error_t *err)
{
    proto_device_t *dev = (proto_device_t *)ctx;
    uint8_t row[4u * PROTO_SAMPLE_FIELDS];
    struct reply scratch;
    struct proto_samples rows;
    int rc;
    scratch.p = row;
    scratch.cap = sizeof row;
    scratch.len = 0;
    scratch.overflow = 0;
    rows.r = &scratch;
    rows.capacity = 1;
    rows.count = 0;
    rc = dev->backend->run(dev->backend->ctx, PROTO_MODE_WITH, 1, &rows, err);
    if (rc != PROTO_E_OK)
        return rc;
    if (rows.count != 1)
        FAIL(PROTO_E_INTERNAL, rows.count, "backend measured %u of 1 iteration", (unsigned)rows.count);
    dev->invoked = 1;
    *invoke = proto_get_u32(row + 8);
    return PROTO_E_OK;
}

static int on_stream(proto_device_t *dev, const uint8_t *p, uint32_t len, struct reply *r, proto_error_t *err)
{
    proto_stream_request_t q;
    proto_stream_result_t res;
    const uint32_t max_frames = PROTO_STREAM_MAX_FRAMES;
    int rc;
    NEED_LEN(PROTO_STREAM_REQUEST_BYTES);
    if (!(dev->info.flags & PROTO_FLAG_STREAM))
        FAIL(PROTO_E_UNSUPPORTED, 0, "this firmware has no STREAM request");
    NEED_MODEL();
    proto_stream_parse(p, &q);
    if (q.arrivals > PROTO_ARRIVALS_POISSON || q.policy > PROTO_POLICY_DROP_LATE || q.count < 1u ||
        q.count > max_frames || q.period < 1u || q.period >= PROTO_STREAM_LIMIT || q.deadline < 1u)
        FAIL(PROTO_E_BAD_ARGUMENT, max_frames,
             "STREAM arrivals %u policy %u count %u period %lu deadline %lu: 0/1, 0/1, 1..%u, 1..2^31-1, >= 1",
             (unsigned)q.arrivals, (unsigned)q.policy, (unsigned)q.count, (unsigned long)q.period,
             (unsigned long)q.deadline, (unsigned)max_frames);
    dev->stream_frames = 0;
    rc = proto_stream_run(&q, stream_ticks, stream_frame, dev, dev->stream_records, &res, err);
    dev->stream_frames = res.frames; /* after an error: the frames handled before it */
    if (rc != PROTO_E_OK) {
        if (rc == PROTO_E_CRASHED)
            unload(dev);
        return rc;
    }
    put_u16(r, res.frames);
    put_u16(r, res.late);
    put_u16(r, res.dropped);
    put_u16(r, 0);
    put_u32(r, (uint32_t)res.next);
    put_u32(r, (uint32_t)(res.next >> 32));
    put_u32(r, res.rng_state);
    put_u32(r, res.busy);
    return 0;
}

static int on_get_stream(proto_device_t *dev, const uint8_t *p, uint32_t len, struct reply *r,
                         proto_error_t *err)
{
    uint16_t first;
    uint32_t count, room;
    NEED_LEN(2u);
    if (!(dev->info.flags & PROTO_FLAG_STREAM))
        FAIL(PROTO_E_UNSUPPORTED, 0, "this firmware has no STREAM request");
    first = proto_get_u16(p);
    if (first > dev->stream_frames)
        FAIL(PROTO_E_BAD_ARGUMENT, dev->stream_frames, "first %u past the %u records held", (unsigned)first,
             (unsigned)dev->stream_frames);
    room = (r->cap - PROTO_STREAM_GET_HEADER) / PROTO_STREAM_RECORD_BYTES;
    count = (uint32_t)dev->stream_frames - first;
    if (count > room)
        count = room;
    if (count > 255u)
        count = 255u;
    put_u16(r, (uint16_t)PROTO_STREAM_MAX_FRAMES);
    put_u16(r, dev->stream_frames);
    put_u16(r, first);
    put_u8(r, (uint8_t)count);
    put_bytes(r, dev->stream_records + (uint32_t)first * PROTO_STREAM_RECORD_BYTES,
              count * PROTO_STREAM_RECORD_BYTES);
    return 0;
}

typedef int (*handler_fn)(proto_device_t *, const uint8_t *, uint32_t, struct reply *, proto_error_t *);

static handler_fn handler_for(uint8_t type)
{
    switch (type) {
    case PROTO_T_HELLO: return on_hello;
    case PROTO_T_UPLOAD_BEGIN: return on_upload_begin;
    case PROTO_T_UPLOAD_CHUNK: return on_upload_chunk;
    case PROTO_T_UPLOAD_END: return on_upload_end;
    case PROTO_T_USE_BUILTIN: return on_use_builtin;
    case PROTO_T_GET_TENSOR: return on_get_tensor;
    case PROTO_T_SET_INPUT: return on_set_input;
    case PROTO_T_RANDOM_INPUT: return on_random_input;
    case PROTO_T_RUN: return on_run;
    case PROTO_T_GET_OUTPUT: return on_get_output;
    case PROTO_T_GET_PROFILE: return on_get_profile;
    case PROTO_T_PING: return on_ping;
    case PROTO_T_EVAL: return on_eval;
    case PROTO_T_STREAM: return on_stream;
    case PROTO_T_GET_STREAM: return on_get_stream;
    default: return NULL;
    }
}

/* Executes one intact request; the reply is left in dev->tx[0..tx_len). */
static void execute(proto_device_t *dev, const proto_event_t *ev)
{
    proto_error_t err;
    struct reply r;
    handler_fn h = handler_for(ev->type);
    uint16_t code;
    int rc;
    memset(&err, 0, sizeof err);
    r.p = dev->tx + PROTO_HEADER_SIZE;
    r.cap = dev->reply_limit;
    r.len = 0;
    r.overflow = 0;
    if (h == NULL) {
        code = PROTO_E_UNKNOWN_TYPE;
        proto_fmt(err.message, sizeof err.message, "unknown message type %u", (unsigned)ev->type);
    } else {
        rc = h(dev, ev->payload, ev->length, &r, &err);
        code = (uint16_t)rc;
        if (rc == PROTO_E_OK && r.overflow) {
            code = PROTO_E_INTERNAL;
            err.detail = r.cap;
            proto_fmt(err.message, sizeof err.message, "reply to type %u does not fit the host's %u bytes",
                      (unsigned)ev->type, (unsigned)r.cap);
        }
    }
    if (code == PROTO_E_OK) {
        dev->tx_len = proto_frame_seal(dev->tx, sizeof dev->tx, PROTO_VERSION, (uint8_t)(ev->type | PROTO_T_OK),
                                       ev->seq, (uint16_t)r.len);
        return;
    }
    err.message[PROTO_MAX_ERROR_MESSAGE] = '\0';
    r.len = error_payload(r.p, dev->reply_limit, code, ev->type, err.detail, err.message);
    dev->tx_len = proto_frame_seal(dev->tx, sizeof dev->tx, PROTO_VERSION, PROTO_T_ERROR, ev->seq,
                                   (uint16_t)r.len);
}

static void handle_event(proto_device_t *dev, const proto_event_t *ev)
{
    if (ev->kind == PROTO_EV_BAD_VERSION) {
        send_aux_error(dev, ev->seq, ev->type, PROTO_E_BAD_VERSION, PROTO_VERSION,
                       "this device speaks protocol version 1");
        return;
    }
    if (ev->kind == PROTO_EV_TOO_LONG) {
        char msg[64];
        proto_fmt(msg, sizeof msg, "payload of %u bytes exceeds max_payload %u", (unsigned)ev->length,
                  (unsigned)dev->max_payload);
        send_aux_error(dev, ev->seq, ev->type, PROTO_E_FRAME_TOO_LONG, dev->max_payload, msg);
        return;
    }
    /* Section 2: a retransmission (same SEQ and CRC) gets the remembered reply, not a re-run. */
    if (ev->type != PROTO_T_HELLO && dev->have_last && ev->seq == dev->last_seq && ev->crc == dev->last_crc) {
        dev->replays++;
        send_raw(dev, dev->tx, dev->tx_len);
        return;
    }
    dev->frames++;
    execute(dev, ev);
    if (ev->type == PROTO_T_HELLO) {
        dev->have_last = 0; /* HELLO is always executed and clears the memory */
    } else {
        dev->have_last = 1;
        dev->last_seq = ev->seq;
        dev->last_crc = ev->crc;
    }
    send_raw(dev, dev->tx, dev->tx_len);
}

void proto_device_rx(proto_device_t *dev, uint8_t byte)
{
    proto_event_t ev;
    proto_parser_push(&dev->parser, byte);
    while (proto_parser_next(&dev->parser, &ev))
        handle_event(dev, &ev);
}

void proto_device_idle(proto_device_t *dev)
{
    proto_event_t ev;
    while (proto_parser_pending(&dev->parser)) {
        proto_parser_drop_partial(&dev->parser);
        while (proto_parser_next(&dev->parser, &ev))
            handle_event(dev, &ev);
    }
}
