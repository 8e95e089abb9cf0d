/* "host-c-stub": a pure-C stand-in for an inference backend, for the host build (fw_host), the
 * fuzz driver and the QEMU Cortex-M3 image.
 *
 * It is NOT TFLite Micro and never pretends to be: it checks that an uploaded model carries the
 * TFLite file identifier "TFL3" and keeps its bytes (so upload, hashing and MODEL_INFO are real),
 * but it never interprets the model. "Invoke" runs a fixed integer workload over one int8 input
 * of 64 elements into one int32 output of 4 elements, as two pseudo-operators STUB_MAC and
 * STUB_CLAMP; tensor names start with "stub_". HELLO always carries flag EMULATED and
 * tflm_version "none (stub)" unless the platform sets another (fw_host --tflm-version, to test
 * HELLO_OK's string cuts). Timing is real on whatever clock the platform gives (`now`).
 */
#ifndef STUB_BACKEND_H
#define STUB_BACKEND_H

#include <stdint.h>

#include "../proto/proto_backend.h"

#define STUB_INPUT_ELEMS 64u
#define STUB_OUTPUT_ELEMS 4u
#define STUB_N_OPS 2u
#define STUB_ARENA_BYTES 16384u /* a board-sized arena, so host-side fit checks pass small models */

typedef struct {
    uint32_t (*now)(void);        /* sample timer, wraps at 2^32 ticks */
    uint32_t cpu_hz;              /* 0 = unknown */
    uint32_t timer_hz;
    uint32_t timer_resolution_ns;
    uint16_t extra_flags;         /* e.g. PROTO_FLAG_CYCLE_COUNTER; EMULATED and PROFILER always set */
    const char *board;
    const char *cpu;
    const char *tflm_version;     /* NULL: "none (stub)" */
    uint8_t *model_store;         /* upload storage, max_model_bytes long */
    uint32_t max_model_bytes;
    uint32_t work_per_invoke;     /* multiply-accumulates per Invoke */
} stub_config_t;

typedef struct {
    stub_config_t cfg;
    uint32_t model_bytes;
    int loaded;
    /* The stub's "arena": where its tensors live, like TFLite Micro's, so arena_used is a
     * real count of bytes, not a made-up one. */
    uint8_t arena[STUB_ARENA_BYTES];
    uint8_t staged[STUB_INPUT_ELEMS];
    uint8_t output_copy[STUB_OUTPUT_ELEMS * 4u];
    uint32_t op_ticks[STUB_N_OPS];
} stub_backend_t;

/* Fills backend (function table) and stub (its context). */
void stub_backend_init(stub_backend_t *stub, const stub_config_t *cfg, proto_backend_t *backend);

#endif
