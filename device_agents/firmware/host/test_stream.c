/* Unit tests of STREAM (SERIAL_PROTOCOL.md 3.12): the gaps against the Python reference, the
 * batch loop on a simulated clock, and STREAM / GET_STREAM through the dispatch.
 *
 * Expected gaps and logarithms come from device_agents/wire/serial_stream.py (CPython's
 * math.log), so these tests pin the C layer to the reference, not only to itself; the logarithm
 * is also compared with this host's libm on all 2^24 inputs. The simulated
 * clock moves by a set step on every timer read and by a set service time in every frame, so the
 * schedule's arithmetic is checked exactly, wrap of the 32-bit timer included. Exit status 0 =
 * all passed.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../proto/proto_device.h"
#include "../proto/proto_sha256.h"
#include "../proto/proto_stream.h"

static int g_failed, g_checks;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        g_checks++;                                                                                          \
        if (!(cond)) {                                                                                       \
            g_failed++;                                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
        }                                                                                                    \
    } while (0)

/* ------------------------------------------------------------------ gaps */

static double from_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* Units in the last place between two non-negative doubles (+0 and -0 are one value). */
static uint64_t ulps(double a, double b)
{
    uint64_t x, y;
    if (a == b)
        return 0;
    memcpy(&x, &a, 8);
    memcpy(&y, &b, 8);
    x &= 0x7FFFFFFFFFFFFFFFull;
    y &= 0x7FFFFFFFFFFFFFFFull;
    return x > y ? x - y : y - x;
}

static void test_neg_ln(void)
{
    /* -math.log(v / 2**24) in CPython, as IEEE-754 bits. */
    static const struct {
        uint32_t v;
        uint64_t bits;
    } want[] = {
        {1u, 0x4030a2b23f3bab73u},        {2u, 0x402fe2804e87b348u},        {3u, 0x402f12e72f21b685u},
        {5u, 0x402e0d5c3f79a540u},        {7u, 0x402d611628b10b9cu},        {1000u, 0x4023749f31af5717u},
        {65535u, 0x40162e46fefc39f1u},    {65536u, 0x40162e42fefa39efu},    {8388607u, 0x3fe62e433efa3a2fu},
        {8388608u, 0x3fe62e42fefa39efu},  {8388609u, 0x3fe62e42befa3a2fu},  {11863283u, 0x3fd62e43115a8fb4u},
        {11863284u, 0x3fd62e42b6d81641u}, {16777214u, 0x3e80000010000015u}, {16777215u, 0x3e70000008000005u},
        {16777216u, 0x8000000000000000u}, {8571313u, 0x3fe57dc10e8c4c07u},  {12030456u, 0x3fd548ff0df05d2eu},
        {973254u, 0x4006c6ed1eb933f8u},   {15623704u, 0x3fb23c4b7f216a98u}, {8356821u, 0x3fe64d5cd729d2c4u},
        {1739907u, 0x40022128480ad3efu},  {5263058u, 0x3ff28c882b62d816u},  {3798562u, 0x3ff7c431f3f93e65u},
        {12475315u, 0x3fd2f615f545860eu}, {15739346u, 0x3fb05900dc629b55u}, {8273612u, 0x3fe69f56dea8e531u},
        {12776116u, 0x3fd16fba2799518du}, {3421694u, 0x3ff9702c5436efcfu},  {8366151u, 0x3fe64438c63be34au},
        {440040u, 0x400d20962afd1819u},   {7272246u, 0x3feac028094a0050u},  {13695277u, 0x3fc9faf2075ab3beu},
        {9377873u, 0x3fe29d07e1a6dc54u},  {6109446u, 0x3ff029b874f76380u},  {13067348u, 0x3fcffce48eaf5608u},
        {5355429u, 0x3ff245446dfe8114u},  {2413629u, 0x3fff05b1e39f39e7u},  {4656262u, 0x3ff48249f06e5d7au},
        {14926209u, 0x3fbded5ccd5e7d66u}};
    unsigned k;
    uint64_t worst = 0;
    for (k = 0; k < sizeof want / sizeof want[0]; k++) {
        uint64_t d = ulps(proto_stream_neg_ln(want[k].v), from_bits(want[k].bits));
        if (d > worst)
            worst = d;
    }
    CHECK(worst <= 1u);
    /* Every one of the 2^24 inputs against this host's libm (CPython's math.log is the same
     * function): never more than 1 ulp apart. */
    {
        uint32_t v;
        for (worst = 0, v = 1; v <= (1u << 24); v++) {
            uint64_t d = ulps(proto_stream_neg_ln(v), -log((double)v / 16777216.0));
            if (d > worst)
                worst = d;
        }
        CHECK(worst <= 1u);
    }
    /* Monotonic: a larger u never gives a larger gap. */
    {
        uint32_t v;
        int ok = 1;
        for (v = 1; v < (1u << 24); v += 997u)
            ok &= proto_stream_neg_ln(v) >= proto_stream_neg_ln(v + 1u);
        CHECK(ok);
    }
}

static void test_gaps(void)
{
    /* serial_stream.gap(POISSON, period, state), 12 draws from each seed, and the state after. */
    static const struct {
        uint32_t seed, period;
        uint64_t gaps[12];
        uint32_t state;
    } want[] = {
        {0u, 1000000u, {1150136, 132724, 727117, 5130226, 106225, 25565, 318651, 11851, 416622, 344733, 2266756, 27338},
         4179142836u},
        {1u, 33333333u,
         {322411408, 138369147, 16128416, 87879979, 19417383, 58371668, 63854021, 76270536, 25387257, 12906572,
          16007050, 35176229},
         1495045943u},
        {12345u, 7u, {2, 6, 3, 6, 13, 2, 0, 1, 4, 5, 12, 15}, 492910303u},
        {0xDEADBEEFu, 2147483647u,
         {2739409303u, 1263874171u, 679661115u, 9447567u, 1933294177u, 949061213u, 2054778662u, 4677634176u,
          1350881877u, 1793880873u, 2654959828u, 57837777u},
         4180835556u}};
    unsigned k, i;
    for (k = 0; k < sizeof want / sizeof want[0]; k++) {
        uint32_t state = want[k].seed;
        int same = 1;
        for (i = 0; i < 12; i++)
            same &= proto_stream_gap(PROTO_ARRIVALS_POISSON, want[k].period, &state) == want[k].gaps[i];
        CHECK(same);
        CHECK(state == want[k].state);
    }
    {
        uint32_t state = 77u; /* fixed arrivals: the period, the state untouched */
        CHECK(proto_stream_gap(PROTO_ARRIVALS_FIXED, 1234u, &state) == 1234u && state == 77u);
    }
    {
        /* The mean of many gaps is the mean gap (the inverse CDF of the exponential). */
        uint32_t state = 9u;
        uint64_t sum = 0;
        unsigned n;
        for (n = 0; n < 200000u; n++)
            sum += proto_stream_gap(PROTO_ARRIVALS_POISSON, 10000u, &state);
        CHECK(sum / 200000u > 9900u && sum / 200000u < 10100u);
    }
}

/* ------------------------------------------------------------------ the batch on a simulated clock */

static uint32_t g_clock, g_step, g_service, g_frames_run;
static int g_fail_at = -1; /* the frame whose Invoke fails */

static uint32_t sim_ticks(void *ctx)
{
    (void)ctx;
    g_clock += g_step;
    return g_clock;
}

static int sim_frame(void *ctx, uint32_t *invoke, proto_error_t *err)
{
    (void)ctx;
    if ((int)g_frames_run == g_fail_at) {
        err->detail = 3;
        return PROTO_E_INVOKE_FAILED;
    }
    g_frames_run++;
    g_clock += g_service;
    *invoke = g_service;
    return PROTO_E_OK;
}

struct rec {
    uint32_t sched, start, end, invoke;
    uint8_t flags;
};

static struct rec rec_at(const uint8_t *records, unsigned i)
{
    const uint8_t *p = records + i * PROTO_STREAM_RECORD_BYTES;
    struct rec r;
    r.sched = proto_get_u32(p);
    r.start = proto_get_u32(p + 4);
    r.end = proto_get_u32(p + 8);
    r.invoke = proto_get_u32(p + 12);
    r.flags = p[16];
    return r;
}

static uint8_t g_records[PROTO_STREAM_MAX_FRAMES * PROTO_STREAM_RECORD_BYTES];

/* Runs a batch from a clock at `clock0`; checks every record against the rules of 3.12 with the
 * simulated clock's exact step (a timer read costs g_step ticks) and returns the totals. */
static proto_stream_result_t batch(const proto_stream_request_t *q, uint32_t clock0, int *rc)
{
    proto_stream_result_t res;
    proto_error_t err;
    uint64_t sched = 0, free_at = q->busy, last_drop = 0;
    uint32_t state = q->rng_state, late = 0, dropped = 0;
    unsigned i;
    int ok = 1;
    memset(&err, 0, sizeof err);
    g_clock = clock0;
    g_frames_run = 0;
    *rc = proto_stream_run(q, sim_ticks, sim_frame, NULL, g_records, &res, &err);
    for (i = 0; i < res.frames; i++) {
        struct rec r = rec_at(g_records, i);
        uint64_t ready = sched > free_at ? sched : free_at;
        if (ready < last_drop) /* a drop takes the device a timer read */
            ready = last_drop;
        ok &= r.sched == sched;
        ok &= r.start >= ready && r.start < ready + 2u * g_step + 1u; /* at most one read past it */
        if (r.flags & PROTO_STREAM_DROPPED) {
            ok &= q->policy == PROTO_POLICY_DROP_LATE && r.start - r.sched > q->deadline;
            ok &= r.end == r.start && r.invoke == 0 && r.flags == PROTO_STREAM_DROPPED;
            dropped++;
            last_drop = r.start;
        } else {
            ok &= q->policy == PROTO_POLICY_QUEUE || r.start - r.sched <= q->deadline;
            /* work spun to the read that passes it, then the frame, then one read */
            ok &= r.end - r.start >= q->work + g_service && r.end - r.start <= q->work + g_service + 2u * g_step;
            ok &= r.invoke == g_service;
            ok &= (r.flags == PROTO_STREAM_LATE) == (r.end - r.sched > q->deadline);
            ok &= r.flags == 0 || r.flags == PROTO_STREAM_LATE;
            late += r.flags;
            free_at = r.end;
        }
        sched += proto_stream_gap(q->arrivals, q->period, &state);
    }
    CHECK(ok);
    CHECK(res.late == late && res.dropped == dropped);
    if (*rc == PROTO_E_OK) {
        CHECK(res.next == sched && res.rng_state == state);
        CHECK(res.busy == (free_at > sched ? free_at - sched : 0u));
    }
    return res;
}

static proto_stream_request_t req(uint8_t arrivals, uint8_t policy, uint16_t count, uint32_t period,
                                  uint32_t deadline, uint32_t work)
{
    proto_stream_request_t q;
    memset(&q, 0, sizeof q);
    q.arrivals = arrivals;
    q.policy = policy;
    q.count = count;
    q.period = period;
    q.deadline = deadline;
    q.work = work;
    q.rng_state = 5u;
    return q;
}

static void test_batches(void)
{
    proto_stream_request_t q;
    proto_stream_result_t r;
    int rc;
    g_step = 1;
    /* Underloaded: a period of 1000 ticks, 200 of work + 300 of Invoke: nothing late, the
     * device idle at every arrival, and the stream ends idle (no backlog). */
    g_service = 300;
    q = req(PROTO_ARRIVALS_FIXED, PROTO_POLICY_QUEUE, 50, 1000, 1000, 200);
    r = batch(&q, 0, &rc);
    CHECK(rc == 0 && r.frames == 50 && r.late == 0 && r.next == 50000u && r.busy == 0);
    /* The same across the 32-bit timer's wrap. */
    r = batch(&q, 0xFFFFF000u, &rc);
    CHECK(rc == 0 && r.frames == 50 && r.late == 0 && r.next == 50000u);
    CHECK(rec_at(g_records, 49).sched == 49000u && rec_at(g_records, 49).start < 49003u);

    /* Overloaded, queue: 500 ticks of service every 300 (and a 300-tick deadline): the queue
     * grows, every frame is late and starts when the one before ends; the backlog carried out
     * is the 40 frames' service less the 40 periods. */
    g_service = 500;
    q = req(PROTO_ARRIVALS_FIXED, PROTO_POLICY_QUEUE, 40, 300, 300, 0);
    r = batch(&q, 100, &rc);
    CHECK(rc == 0 && r.frames == 40 && r.late == 40 && r.dropped == 0);
    CHECK(r.busy >= 40u * 500u - 12000u && r.busy <= 40u * 510u - 12000u);
    CHECK(rec_at(g_records, 39).start >= 39u * 500u && rec_at(g_records, 39).start <= 39u * 510u);

    /* Overloaded, drop-late: stale frames are dropped, never run: the device stays busy, so one
     * frame in 500/300 is run; a run frame starts within the deadline of its time. */
    q = req(PROTO_ARRIVALS_FIXED, PROTO_POLICY_DROP_LATE, 250, 300, 300, 0);
    r = batch(&q, 0, &rc);
    CHECK(rc == 0 && r.frames == 250 && r.dropped > 90 && r.dropped < 110 && r.late + r.dropped == 250);
    CHECK(g_frames_run == 250u - r.dropped);

    /* The backlog carried in: the device is busy until 5000, so frame 0 starts there. */
    g_service = 100;
    q = req(PROTO_ARRIVALS_FIXED, PROTO_POLICY_QUEUE, 10, 1000, 100000, 0);
    q.busy = 5000;
    r = batch(&q, 0, &rc);
    CHECK(rc == 0 && rec_at(g_records, 0).start >= 5000u && rec_at(g_records, 0).start <= 5002u);
    CHECK(rec_at(g_records, 5).start >= 5000u + 5u * 101u && rec_at(g_records, 6).start >= 6000u);

    /* Poisson: the schedule is the reference's (checked in batch()), the state moves on. */
    q = req(PROTO_ARRIVALS_POISSON, PROTO_POLICY_QUEUE, 100, 700, 700, 50);
    q.rng_state = 0; /* stands for 0x9E3779B9 */
    r = batch(&q, 12345, &rc);
    CHECK(rc == 0 && r.frames == 100 && r.rng_state != 0);

    /* The 2^31 limit: frames 2^30 apart, the batch ends before the third (at 2^31). */
    g_step = 1u << 16;
    q = req(PROTO_ARRIVALS_FIXED, PROTO_POLICY_QUEUE, 5, 1u << 30, 1000, 0);
    r = batch(&q, 7, &rc);
    CHECK(rc == 0 && r.frames == 2 && r.next == (uint64_t)1u << 31);
    g_step = 1;

    /* A failing Invoke ends the batch; the frames before it keep their records. */
    g_service = 10;
    g_fail_at = 4;
    q = req(PROTO_ARRIVALS_FIXED, PROTO_POLICY_QUEUE, 20, 100, 100, 0);
    r = batch(&q, 0, &rc);
    CHECK(rc == PROTO_E_INVOKE_FAILED && r.frames == 4);
    g_fail_at = -1;
}

/* ------------------------------------------------------------------ through the dispatch */

static uint8_t sb_in[4], sb_out[4], sb_store[64];
static uint32_t sb_size;
static int sb_runs, sb_mode; /* sb_mode: 0 fine, 1 Invoke fails, 2 the interpreter crashes */

static void sb_info(void *ctx, proto_info_t *o)
{
    (void)ctx;
    memset(o, 0, sizeof *o);
    o->timer_hz = 1000000u;
    o->timer_resolution_ns = 1000u;
    o->arena_bytes = 1000u;
    o->max_model_bytes = sizeof sb_store;
    o->flags = PROTO_FLAG_EMULATED | PROTO_FLAG_STREAM; /* claimed: kept only with ticks */
    o->board = "unit";
    o->cpu = "test";
    o->tflm_version = "none";
}
static int sb_begin(void *c, uint32_t n, proto_error_t *e) { (void)c; (void)e; sb_size = n; return 0; }
static int sb_write(void *c, uint32_t off, const uint8_t *d, uint32_t n, proto_error_t *e)
{
    (void)c; (void)e;
    memcpy(sb_store + off, d, n);
    return 0;
}
static const uint8_t *sb_data(void *c) { (void)c; return sb_store; }
static int sb_load(void *c, int builtin, proto_model_t *m, proto_error_t *e)
{
    (void)c; (void)e; (void)builtin;
    m->model = sb_store;
    m->model_bytes = sb_size;
    m->arena_used_bytes = 10u;
    m->n_inputs = 1;
    m->n_outputs = 1;
    m->n_ops = 1;
    return 0;
}
static int sb_tensor(void *c, int which, uint8_t i, proto_tensor_t *t, proto_error_t *e)
{
    (void)c; (void)e; (void)i;
    t->ndims = 1;
    t->dtype = PROTO_DT_INT8;
    t->bytes = 4u;
    t->dims[0] = 4;
    t->name = which ? "y" : "x";
    return 0;
}
static uint8_t *sb_staged(void *c, uint8_t i) { (void)c; (void)i; return sb_in; }
static const uint8_t *sb_output(void *c, uint8_t i) { (void)c; (void)i; return sb_out; }
static int sb_run(void *c, uint8_t mode, uint16_t count, proto_samples_t *rows, proto_error_t *e)
{
    uint16_t k;
    (void)c;
    if (sb_mode == 1) {
        e->detail = 1;
        return PROTO_E_INVOKE_FAILED;
    }
    if (sb_mode == 2)
        return PROTO_E_CRASHED;
    for (k = 0; k < count; k++) {
        sb_runs++;
        g_clock += g_service;
        sb_out[0] = (uint8_t)sb_runs;
        proto_samples_put(rows, g_service + 2u, 1u, mode == 0 ? g_service : 0u, 1u);
    }
    return 0;
}

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

static void init_device(proto_backend_t *b, int with_ticks)
{
    memset(b, 0, sizeof *b);
    b->info = sb_info;
    b->upload_begin = sb_begin;
    b->upload_write = sb_write;
    b->upload_data = sb_data;
    b->load = sb_load;
    b->tensor = sb_tensor;
    b->staged_input = sb_staged;
    b->run = sb_run;
    b->output_data = sb_output;
    b->ticks = with_ticks ? sim_ticks : NULL;
    CHECK(proto_device_init(&g_dev, b, capture, NULL, 256) == 0);
}

static void pack_req(uint8_t *p, uint8_t arrivals, uint8_t policy, uint16_t count, uint32_t period,
                     uint32_t deadline, uint32_t work, uint32_t state, uint32_t busy)
{
    p[0] = arrivals;
    p[1] = policy;
    proto_put_u16(p + 2, count);
    proto_put_u32(p + 4, period);
    proto_put_u32(p + 8, deadline);
    proto_put_u32(p + 12, work);
    proto_put_u32(p + 16, state);
    proto_put_u32(p + 20, busy);
}

static int is_error(int type, const uint8_t *out, uint16_t code)
{
    return type == PROTO_T_ERROR && proto_get_u16(out) == code;
}

static void upload(uint8_t *seq, uint8_t *out, uint16_t *olen)
{
    uint8_t begin[36], chunk[12] = {0};
    proto_put_u32(begin, 8);
    proto_sha256(chunk + 4, 8, begin + 4);
    CHECK(request(PROTO_T_UPLOAD_BEGIN, (*seq)++, begin, 36, out, olen) == 0x82);
    CHECK(request(PROTO_T_UPLOAD_CHUNK, (*seq)++, chunk, 12, out, olen) == 0x83);
    CHECK(request(PROTO_T_UPLOAD_END, (*seq)++, NULL, 0, out, olen) == 0x84);
}

static void test_dispatch_refusals(void)
{
    proto_backend_t b;
    uint8_t out[PROTO_MAX_PAYLOAD], q[32] = {0}, seq = 1;
    uint16_t olen;
    /* Without a backend timer: flag STREAM is not claimed; BAD_LENGTH, then UNSUPPORTED whatever
     * the state, for both requests. */
    init_device(&b, 0);
    proto_put_u16(q, 256);
    CHECK(request(PROTO_T_HELLO, seq++, q, 2, out, &olen) == 0x81 && !(proto_get_u16(out + 26) & PROTO_FLAG_STREAM));
    memset(q, 0, sizeof q);
    CHECK(is_error(request(PROTO_T_STREAM, seq++, q, 23, out, &olen), out, PROTO_E_BAD_LENGTH) &&
          proto_get_u32(out + 3) == 24);
    CHECK(is_error(request(PROTO_T_STREAM, seq++, q, 25, out, &olen), out, PROTO_E_BAD_LENGTH));
    CHECK(is_error(request(PROTO_T_GET_STREAM, seq++, q, 3, out, &olen), out, PROTO_E_BAD_LENGTH) &&
          proto_get_u32(out + 3) == 2);
    CHECK(is_error(request(PROTO_T_STREAM, seq++, q, 24, out, &olen), out, PROTO_E_UNSUPPORTED) &&
          out[2] == PROTO_T_STREAM);
    CHECK(is_error(request(PROTO_T_GET_STREAM, seq++, q, 2, out, &olen), out, PROTO_E_UNSUPPORTED));

    init_device(&b, 1);
    proto_put_u16(q, 256);
    CHECK(request(PROTO_T_HELLO, seq++, q, 2, out, &olen) == 0x81 && (proto_get_u16(out + 26) & PROTO_FLAG_STREAM));
    /* GET_STREAM needs no model: it reports max_frames and no records. */
    memset(q, 0, sizeof q);
    CHECK(request(PROTO_T_GET_STREAM, seq++, q, 2, out, &olen) == 0x8F && olen == 7);
    CHECK(proto_get_u16(out) == PROTO_STREAM_MAX_FRAMES && proto_get_u16(out + 2) == 0 && out[6] == 0);
    proto_put_u16(q, 1);
    CHECK(is_error(request(PROTO_T_GET_STREAM, seq++, q, 2, out, &olen), out, PROTO_E_BAD_ARGUMENT) &&
          proto_get_u32(out + 3) == 0);
    pack_req(q, 0, 0, 10, 1000, 1000, 0, 0, 0);
    CHECK(is_error(request(PROTO_T_STREAM, seq++, q, 24, out, &olen), out, PROTO_E_BAD_STATE));
    upload(&seq, out, &olen);
    {
        /* Each field out of range: BAD_ARGUMENT, detail = max_frames, nothing run. */
        static const uint32_t bad[][4] = {/* arrivals, policy, count, period */
                                          {2, 0, 10, 1000}, {0, 2, 10, 1000}, {0, 0, 0, 1000},
                                          {0, 0, PROTO_STREAM_MAX_FRAMES + 1u, 1000}, {0, 0, 10, 0},
                                          {1, 0, 10, 0x80000000u}};
        unsigned k;
        sb_runs = 0;
        for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            pack_req(q, (uint8_t)bad[k][0], (uint8_t)bad[k][1], (uint16_t)bad[k][2], bad[k][3], 1000, 0, 0, 0);
            CHECK(is_error(request(PROTO_T_STREAM, seq++, q, 24, out, &olen), out, PROTO_E_BAD_ARGUMENT) &&
                  proto_get_u32(out + 3) == PROTO_STREAM_MAX_FRAMES);
        }
        pack_req(q, 0, 0, 10, 1000, 0, 0, 0, 0); /* deadline 0 */
        CHECK(is_error(request(PROTO_T_STREAM, seq++, q, 24, out, &olen), out, PROTO_E_BAD_ARGUMENT));
        CHECK(sb_runs == 0);
    }
}

static void test_dispatch_batches(void)
{
    proto_backend_t b;
    uint8_t out[PROTO_MAX_PAYLOAD], q[32] = {0}, seq = 100;
    uint16_t olen;
    uint32_t got = 0;
    g_step = 1;
    g_service = 40;
    sb_mode = 0;
    init_device(&b, 1);
    proto_put_u16(q, 64); /* 64-byte replies: 3 records per GET_STREAM page */
    CHECK(request(PROTO_T_HELLO, seq++, q, 2, out, &olen) == 0x81);
    upload(&seq, out, &olen);
    /* A GET_OUTPUT before any Invoke is refused; after a STREAM it describes the stream's last frame. */
    memcpy(q, "\0\0\0\0\0\xff\xff", 7);
    CHECK(is_error(request(PROTO_T_GET_OUTPUT, seq++, q, 7, out, &olen), out, PROTO_E_BAD_STATE));
    sb_runs = 0;
    pack_req(q, 1, 0, 10, 100, 1000, 20, 42, 0);
    CHECK(request(PROTO_T_STREAM, seq, q, 24, out, &olen) == 0x8E && olen == 24);
    CHECK(proto_get_u16(out) == 10 && proto_get_u16(out + 2) == 0 && proto_get_u16(out + 4) == 0 &&
          proto_get_u16(out + 6) == 0 && sb_runs == 10);
    {
        /* next_ticks and rng_state are the reference's: ten gaps drawn from state 42. */
        uint32_t state = 42, k;
        uint64_t sched = 0;
        for (k = 0; k < 10; k++)
            sched += proto_stream_gap(PROTO_ARRIVALS_POISSON, 100, &state);
        CHECK(proto_get_u32(out + 8) == (uint32_t)sched && proto_get_u32(out + 12) == 0 &&
              proto_get_u32(out + 16) == state);
    }
    /* A retransmission is answered from memory: the batch does not run again. */
    CHECK(request(PROTO_T_STREAM, seq++, q, 24, out, &olen) == 0x8E && sb_runs == 10);
    memcpy(q, "\0\0\0\0\0\xff\xff", 7);
    CHECK(request(PROTO_T_GET_OUTPUT, seq++, q, 7, out, &olen) == 0x8A && out[8] == 10);
    /* Paging: 3 records per 64-byte reply, then what is left, then count 0 at the end. */
    while (got < 10u) {
        proto_put_u16(q, (uint16_t)got);
        CHECK(request(PROTO_T_GET_STREAM, seq++, q, 2, out, &olen) == 0x8F);
        CHECK(proto_get_u16(out) == PROTO_STREAM_MAX_FRAMES && proto_get_u16(out + 2) == 10 &&
              proto_get_u16(out + 4) == got && out[6] == (got + 3u <= 10u ? 3u : 10u - got) &&
              olen == 7u + 17u * out[6] && olen <= 64u);
        {
            const uint8_t *r = out + 7;
            CHECK(proto_get_u32(r + 12) == 40u && r[16] == 0 && proto_get_u32(r + 8) > proto_get_u32(r + 4));
        }
        got += out[6];
    }
    proto_put_u16(q, 10);
    CHECK(request(PROTO_T_GET_STREAM, seq++, q, 2, out, &olen) == 0x8F && out[6] == 0 && olen == 7);
    proto_put_u16(q, 11);
    CHECK(is_error(request(PROTO_T_GET_STREAM, seq++, q, 2, out, &olen), out, PROTO_E_BAD_ARGUMENT) &&
          proto_get_u32(out + 3) == 10);
    /* HELLO keeps the records; this device's 256-byte payload holds 14 records a page. */
    proto_put_u16(q, 8192);
    CHECK(request(PROTO_T_HELLO, seq++, q, 2, out, &olen) == 0x81);
    proto_put_u16(q, 0);
    CHECK(request(PROTO_T_GET_STREAM, seq++, q, 2, out, &olen) == 0x8F && out[6] == 10);
    /* A full batch of max_frames, paged 14 at a time to its last record. */
    pack_req(q, 0, 0, PROTO_STREAM_MAX_FRAMES, 50, 50, 0, 0, 0);
    CHECK(request(PROTO_T_STREAM, seq++, q, 24, out, &olen) == 0x8E && proto_get_u16(out) == PROTO_STREAM_MAX_FRAMES);
    for (got = 0; got < PROTO_STREAM_MAX_FRAMES; got += out[6]) {
        proto_put_u16(q, (uint16_t)got);
        CHECK(request(PROTO_T_GET_STREAM, seq++, q, 2, out, &olen) == 0x8F && olen <= 256u && out[6] > 0);
        CHECK(out[6] == (PROTO_STREAM_MAX_FRAMES - got < 14u ? PROTO_STREAM_MAX_FRAMES - got : 14u));
        CHECK(proto_get_u32(out + 7) == got * 50u); /* fixed arrivals: frame k at k periods */
    }
    /* Loading a model drops the records. */
    upload(&seq, out, &olen);
    proto_put_u16(q, 0);
    CHECK(request(PROTO_T_GET_STREAM, seq++, q, 2, out, &olen) == 0x8F && proto_get_u16(out + 2) == 0);

    /* A failing Invoke: INVOKE_FAILED, the model kept, no records of the failed frame. */
    sb_mode = 1;
    pack_req(q, 0, 0, 5, 100, 100, 0, 0, 0);
    CHECK(is_error(request(PROTO_T_STREAM, seq++, q, 24, out, &olen), out, PROTO_E_INVOKE_FAILED));
    proto_put_u16(q, 0);
    CHECK(request(PROTO_T_GET_STREAM, seq++, q, 2, out, &olen) == 0x8F && proto_get_u16(out + 2) == 0);
    CHECK(request(PROTO_T_GET_TENSOR, seq++, (const uint8_t *)"\0\0", 2, out, &olen) == 0x86);
    /* A crash unloads the model and its records. */
    sb_mode = 2;
    pack_req(q, 0, 0, 5, 100, 100, 0, 0, 0);
    CHECK(is_error(request(PROTO_T_STREAM, seq++, q, 24, out, &olen), out, PROTO_E_CRASHED));
    CHECK(is_error(request(PROTO_T_GET_TENSOR, seq++, (const uint8_t *)"\0\0", 2, out, &olen), out,
                   PROTO_E_BAD_STATE));
    sb_mode = 0;
    /* A reset drops them too. */
    upload(&seq, out, &olen);
    pack_req(q, 0, 1, 4, 100, 100, 0, 0, 0);
    CHECK(request(PROTO_T_STREAM, seq++, q, 24, out, &olen) == 0x8E);
    proto_device_reset(&g_dev);
    proto_put_u16(q, 0);
    CHECK(request(PROTO_T_GET_STREAM, seq++, q, 2, out, &olen) == 0x8F && proto_get_u16(out + 2) == 0);
}

int main(void)
{
    test_neg_ln();
    test_gaps();
    test_batches();
    test_dispatch_refusals();
    test_dispatch_batches();
    if (g_failed) {
        fprintf(stderr, "test_stream: %d of %d checks FAILED\n", g_failed, g_checks);
        return 1;
    }
    printf("test_stream: all %d checks passed\n", g_checks);
    return 0;
}
