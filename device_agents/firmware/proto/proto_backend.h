/* What the protocol layer needs from an inference backend: a struct of function pointers.
 *
 * The protocol layer (proto_device.c) owns framing, CRCs, duplicate suppression, SHA-256, seeded
 * random inputs and every bounds check on lengths, offsets and indices; a backend only ever
 * sees requests that are already in range. Backends: the TFLite Micro one for real boards
 * (../tflm/) and the "host-c-stub" (../host/stub_backend.c), which runs a fixed integer workload
 * instead of a model and says so.
 *
 * Every function that can fail returns PROTO_E_OK (0) or a section-5 error code and may fill
 * err->detail and err->message (a NUL-terminated string, at most PROTO_MAX_ERROR_MESSAGE bytes).
 * Ticks are of the sample timer described by proto_info_t.timer_hz.
 */
#ifndef PROTO_BACKEND_H
#define PROTO_BACKEND_H

#include <stdint.h>

#include "proto_wire.h"

#ifdef __cplusplus
extern "C" { /* the TFLite Micro backend is C++ */
#endif

typedef struct {
    uint32_t detail;
    char message[PROTO_MAX_ERROR_MESSAGE + 1];
} proto_error_t;

/* Static facts of the board, reported in HELLO (section 3.1). */
typedef struct {
    uint32_t cpu_hz;              /* core clock, Hz (0 = unknown) */
    uint32_t timer_hz;            /* sample timer ticks per second */
    uint32_t timer_resolution_ns; /* smallest step the timer shows, ns (>= 1) */
    uint32_t arena_bytes;         /* tensor arena size, bytes */
    uint32_t max_model_bytes;     /* largest model upload_begin accepts (0 = no upload) */
    uint16_t max_batch;           /* backend's own cap on RUN count (0 = only the payload limit) */
    uint16_t flags;               /* PROTO_FLAG_* */
    const char *board;
    const char *cpu;
    const char *tflm_version;
} proto_info_t;

/* What a backend reports after loading a model (MODEL_INFO, section 3.4). */
typedef struct {
    const uint8_t *model;      /* the loaded model's bytes, hashed by the protocol layer */
    uint32_t model_bytes;
    uint32_t arena_used_bytes; /* PROTO_UNKNOWN_U32 when unknown */
    uint32_t init_ticks;
    uint8_t n_inputs;
    uint8_t n_outputs;
    uint16_t n_ops;
} proto_model_t;

typedef struct {
    uint8_t dtype; /* enum proto_dtype */
    uint8_t ndims; /* 0..PROTO_MAX_DIMS */
    int32_t dims[PROTO_MAX_DIMS];
    float scale; /* 0.0 when not quantized */
    int32_t zero_point;
    uint32_t bytes; /* size of the tensor data */
    const char *name;
} proto_tensor_t;

/* Where RUN rows go: proto_samples_put writes them straight into the reply frame. */
typedef struct proto_samples proto_samples_t;
/* Appends one row of ticks (loop, set_input, invoke, get_output); returns 0, or -1 when the
 * batch is already full (a backend bug, never an overflow). */
int proto_samples_put(proto_samples_t *s, uint32_t loop, uint32_t set_input, uint32_t invoke,
                      uint32_t get_output);

typedef struct {
    void *ctx;
    void (*info)(void *ctx, proto_info_t *out);
    /* Reset button / HELLO-independent state loss: drop the model and any upload. */
    void (*reset)(void *ctx);
    /* Start an upload of model_bytes (<= max_model_bytes): drop the loaded model. */
    int (*upload_begin)(void *ctx, uint32_t model_bytes, proto_error_t *err);
    /* Store data at offset; offset + len <= model_bytes is guaranteed. */
    int (*upload_write)(void *ctx, uint32_t offset, const uint8_t *data, uint32_t len, proto_error_t *err);
    /* The stored upload (model_bytes long), hashed before the model is loaded. */
    const uint8_t *(*upload_data)(void *ctx);
    /* Load the uploaded model (builtin = 0) or the one built into the firmware (builtin = 1),
     * allocate tensors and zero-fill the staged inputs. */
    int (*load)(void *ctx, int builtin, proto_model_t *out, proto_error_t *err);
    /* which: 0 input, 1 output; index < n_inputs / n_outputs is guaranteed. */
    int (*tensor)(void *ctx, int which, uint8_t index, proto_tensor_t *out, proto_error_t *err);
    /* The staged copy of input index (tensor bytes long) that every RUN iteration copies in. */
    uint8_t *(*staged_input)(void *ctx, uint8_t index);
    /* count (1..max_batch) iterations of the application loop in mode PROTO_MODE_*; one
     * proto_samples_put per iteration, never while the timer runs. */
    int (*run)(void *ctx, uint8_t mode, uint16_t count, proto_samples_t *rows, proto_error_t *err);
    /* Output index after the last Invoke, a run's or an eval's (tensor bytes long). */
    const uint8_t *(*output_data)(void *ctx, uint8_t index);
    /* Op op_index (< n_ops) of the last Invoke: its ticks and name. NULL when no profiler. */
    int (*profile)(void *ctx, uint16_t op_index, uint32_t *ticks, const char **name, proto_error_t *err);
    /* EVAL (section 3.11): one iteration of the application loop with Invoke, untimed and
     * outside any batch: copy the staged inputs in, Invoke, copy the outputs out, so that
     * output_data then returns them. NULL: no EVAL (HELLO then clears flag EVAL). */
    int (*eval)(void *ctx, proto_error_t *err);
    /* STREAM (section 3.12): the sample timer now, in ticks (wraps at 2^32). The protocol layer
     * runs the schedule on it: it busy-waits for each frame's time, spins the frame's work, and
     * runs the frame as run(PROTO_MODE_WITH, 1), so a backend needs nothing else for STREAM.
     * NULL: no STREAM (HELLO then clears flag STREAM). */
    uint32_t (*ticks)(void *ctx);
} proto_backend_t;

#ifdef __cplusplus
}
#endif

#endif
