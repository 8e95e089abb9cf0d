/* host-c-stub backend; see stub_backend.h for what it is and is not. */
#include "stub_backend.h"

#include <string.h>

#include "../proto/proto_fmt.h"

/* Arena layout: input tensor, then output tensor (int32, 4-byte aligned offset). */
#define IN_OFFSET 0u
#define OUT_OFFSET 64u
#define ARENA_USED (OUT_OFFSET + STUB_OUTPUT_ELEMS * 4u)

static const char *const op_names[STUB_N_OPS] = {"STUB_MAC", "STUB_CLAMP"};

static void info(void *ctx, proto_info_t *out)
{
    stub_backend_t *s = (stub_backend_t *)ctx;
    memset(out, 0, sizeof *out);
    out->cpu_hz = s->cfg.cpu_hz;
    out->timer_hz = s->cfg.timer_hz;
    out->timer_resolution_ns = s->cfg.timer_resolution_ns;
    out->arena_bytes = STUB_ARENA_BYTES;
    out->max_model_bytes = s->cfg.model_store ? s->cfg.max_model_bytes : 0;
    out->max_batch = 0;
    out->flags = (uint16_t)(PROTO_FLAG_EMULATED | PROTO_FLAG_PROFILER | s->cfg.extra_flags);
    out->board = s->cfg.board;
    out->cpu = s->cfg.cpu;
    out->tflm_version = s->cfg.tflm_version ? s->cfg.tflm_version : "none (stub)";
}

static void reset(void *ctx)
{
    stub_backend_t *s = (stub_backend_t *)ctx;
    s->loaded = 0;
    s->model_bytes = 0;
}

static int upload_begin(void *ctx, uint32_t model_bytes, proto_error_t *err)
{
    stub_backend_t *s = (stub_backend_t *)ctx;
    s->loaded = 0;
    if (model_bytes > s->cfg.max_model_bytes) { /* the protocol layer checked; belt and braces */
        err->detail = s->cfg.max_model_bytes;
        proto_fmt(err->message, sizeof err->message, "model too large for the stub's store");
        return PROTO_E_MODEL_TOO_LARGE;
    }
    s->model_bytes = model_bytes;
    return PROTO_E_OK;
}

static int upload_write(void *ctx, uint32_t offset, const uint8_t *data, uint32_t len, proto_error_t *err)
{
    stub_backend_t *s = (stub_backend_t *)ctx;
    if ((uint64_t)offset + len > s->model_bytes) {
        err->detail = s->model_bytes;
        proto_fmt(err->message, sizeof err->message, "write outside the model");
        return PROTO_E_BAD_ARGUMENT;
    }
    memcpy(s->cfg.model_store + offset, data, len);
    return PROTO_E_OK;
}

static const uint8_t *upload_data(void *ctx)
{
    return ((stub_backend_t *)ctx)->cfg.model_store;
}

static int load(void *ctx, int builtin, proto_model_t *out, proto_error_t *err)
{
    stub_backend_t *s = (stub_backend_t *)ctx;
    uint32_t t0 = s->cfg.now();
    s->loaded = 0;
    if (builtin) {
        proto_fmt(err->message, sizeof err->message, "the stub has no built-in model");
        return PROTO_E_UNSUPPORTED;
    }
    /* A .tflite flatbuffer carries its file identifier at bytes 4..7. */
    if (s->model_bytes < 8u || memcmp(s->cfg.model_store + 4, "TFL3", 4) != 0) {
        proto_fmt(err->message, sizeof err->message,
                  "not a TFLite flatbuffer: no \"TFL3\" identifier at byte 4 of the %lu-byte upload",
                  (unsigned long)s->model_bytes);
        return PROTO_E_BAD_MODEL;
    }
    memset(s->arena, 0, sizeof s->arena);
    memset(s->staged, 0, sizeof s->staged);
    memset(s->output_copy, 0, sizeof s->output_copy);
    memset(s->op_ticks, 0, sizeof s->op_ticks);
    s->loaded = 1;
    out->model = s->cfg.model_store;
    out->model_bytes = s->model_bytes;
    out->arena_used_bytes = ARENA_USED;
    out->n_inputs = 1;
    out->n_outputs = 1;
    out->n_ops = STUB_N_OPS;
    out->init_ticks = s->cfg.now() - t0;
    return PROTO_E_OK;
}

static int tensor(void *ctx, int which, uint8_t index, proto_tensor_t *out, proto_error_t *err)
{
    (void)ctx;
    if (index != 0) {
        err->detail = 1;
        return PROTO_E_BAD_INDEX;
    }
    out->ndims = 2;
    out->dims[0] = 1;
    if (which == 0) {
        out->dtype = PROTO_DT_INT8;
        out->dims[1] = (int32_t)STUB_INPUT_ELEMS;
        out->scale = 1.0f / 128.0f;
        out->zero_point = 0;
        out->bytes = STUB_INPUT_ELEMS;
        out->name = "stub_input";
    } else {
        out->dtype = PROTO_DT_INT32;
        out->dims[1] = (int32_t)STUB_OUTPUT_ELEMS;
        out->scale = 0.0f;
        out->zero_point = 0;
        out->bytes = STUB_OUTPUT_ELEMS * 4u;
        out->name = "stub_output";
    }
    return PROTO_E_OK;
}

static uint8_t *staged_input(void *ctx, uint8_t index)
{
    stub_backend_t *s = (stub_backend_t *)ctx;
    return (s->loaded && index == 0) ? s->staged : NULL;
}

static const uint8_t *output_data(void *ctx, uint8_t index)
{
    stub_backend_t *s = (stub_backend_t *)ctx;
    return (s->loaded && index == 0) ? s->output_copy : NULL;
}

/* The fixed integer workload that stands in for Invoke: work MACs over the input, then a clamp.
 * volatile stores keep the compiler from deleting or hoisting the loop out of the timed span. */
static void stub_invoke(stub_backend_t *s)
{
    const int8_t *in = (const int8_t *)(s->arena + IN_OFFSET);
    int32_t acc[STUB_OUTPUT_ELEMS] = {0, 0, 0, 0};
    volatile uint8_t *out = s->arena + OUT_OFFSET;
    uint32_t k, j, t0, t1, t2;
    t0 = s->cfg.now();
    for (k = 0; k < s->cfg.work_per_invoke; k++)
        acc[k & 3u] += (int32_t)in[k % STUB_INPUT_ELEMS] * (int32_t)((k * 2654435761u) >> 25);
    t1 = s->cfg.now();
    for (j = 0; j < STUB_OUTPUT_ELEMS; j++) {
        int32_t v = acc[j] < -1000000 ? -1000000 : (acc[j] > 1000000 ? 1000000 : acc[j]);
        proto_put_u32((uint8_t *)out + 4u * j, (uint32_t)v);
    }
    t2 = s->cfg.now();
    s->op_ticks[0] = t1 - t0;
    s->op_ticks[1] = t2 - t1;
}

static int run(void *ctx, uint8_t mode, uint16_t count, proto_samples_t *rows, proto_error_t *err)
{
    stub_backend_t *s = (stub_backend_t *)ctx;
    uint16_t i;
    if (!s->loaded) {
        proto_fmt(err->message, sizeof err->message, "no model loaded");
        return PROTO_E_BAD_STATE;
    }
    for (i = 0; i < count; i++) {
        uint32_t t0, t1, t2, t3;
        t0 = s->cfg.now();
        memcpy(s->arena + IN_OFFSET, s->staged, STUB_INPUT_ELEMS);
        t1 = s->cfg.now();
        if (mode == PROTO_MODE_WITH)
            stub_invoke(s);
        t2 = s->cfg.now();
        memcpy(s->output_copy, s->arena + OUT_OFFSET, sizeof s->output_copy);
        t3 = s->cfg.now();
        /* Outside the timed span: writing the row never enters a sample. */
        if (proto_samples_put(rows, t3 - t0, t1 - t0, mode == PROTO_MODE_WITH ? t2 - t1 : 0u, t3 - t2) != 0) {
            proto_fmt(err->message, sizeof err->message, "sample batch full");
            return PROTO_E_INTERNAL;
        }
    }
    return PROTO_E_OK;
}

/* EVAL: the loop of run() once with Invoke, without the timer reads and without a sample row. */
static int eval(void *ctx, proto_error_t *err)
{
    stub_backend_t *s = (stub_backend_t *)ctx;
    if (!s->loaded) {
        proto_fmt(err->message, sizeof err->message, "no model loaded");
        return PROTO_E_BAD_STATE;
    }
    memcpy(s->arena + IN_OFFSET, s->staged, STUB_INPUT_ELEMS);
    stub_invoke(s);
    memcpy(s->output_copy, s->arena + OUT_OFFSET, sizeof s->output_copy);
    return PROTO_E_OK;
}

static int profile(void *ctx, uint16_t op_index, uint32_t *ticks, const char **name, proto_error_t *err)
{
    stub_backend_t *s = (stub_backend_t *)ctx;
    if (op_index >= STUB_N_OPS) {
        err->detail = STUB_N_OPS;
        return PROTO_E_BAD_INDEX;
    }
    *ticks = s->op_ticks[op_index];
    *name = op_names[op_index];
    return PROTO_E_OK;
}

/* STREAM's timer: the platform's sample clock, the one run() times with. */
static uint32_t ticks(void *ctx)
{
    return ((stub_backend_t *)ctx)->cfg.now();
}

void stub_backend_init(stub_backend_t *stub, const stub_config_t *cfg, proto_backend_t *backend)
{
    memset(stub, 0, sizeof *stub);
    stub->cfg = *cfg;
    memset(backend, 0, sizeof *backend);
    backend->ctx = stub;
    backend->info = info;
    backend->reset = reset;
    backend->upload_begin = upload_begin;
    backend->upload_write = upload_write;
    backend->upload_data = upload_data;
    backend->load = load;
    backend->tensor = tensor;
    backend->staged_input = staged_input;
    backend->run = run;
    backend->output_data = output_data;
    backend->profile = profile;
    backend->eval = eval;
    backend->ticks = ticks;
}
