// The TFLite Micro backend of the protocol layer: tflite::MicroInterpreter over a static arena,
// a per-operator profiler, staged inputs and copied-out outputs (SERIAL_PROTOCOL.md 3.8).
//
// Board-independent: the board glue (board_arduino.cpp) supplies the sample timer and the static
// facts reported in HELLO. NOT compiled or run in this repository's tests: TFLite Micro sources
// are not available offline here (see ../README.md for the exact build).
#ifndef TFLM_BACKEND_H
#define TFLM_BACKEND_H

#include <stdint.h>

#include "../proto/proto_backend.h"

// Sizes, overridable with -D in platformio.ini. Defaults fit an nRF52840 (256 KiB RAM).
#ifndef HARNESS_ARENA_BYTES
#define HARNESS_ARENA_BYTES (96u * 1024u)
#endif
#ifndef HARNESS_MODEL_STORE_BYTES
#define HARNESS_MODEL_STORE_BYTES (112u * 1024u)
#endif
#ifndef HARNESS_STAGING_BYTES  // staged inputs + copied-out outputs, all tensors together
#define HARNESS_STAGING_BYTES (16u * 1024u)
#endif
#ifndef HARNESS_MAX_PROFILE_OPS
#define HARNESS_MAX_PROFILE_OPS 128u
#endif
#ifndef HARNESS_TFLM_VERSION  // set it to the library's git commit when you build
#define HARNESS_TFLM_VERSION "tflite-micro-arduino-examples (commit not recorded)"
#endif

struct TflmBoard {
    uint32_t (*now)();          // sample timer ticks, wraps at 2^32
    uint32_t cpu_hz;            // core clock (0 = unknown)
    uint32_t timer_hz;          // ticks per second of now()
    uint32_t timer_resolution_ns;
    bool cycle_counter;         // now() is the core cycle counter (DWT CYCCNT)
    const char* board;
    const char* cpu;
    const uint8_t* builtin_model;  // nullptr when no model is compiled in
    uint32_t builtin_model_bytes;
};

// Fills backend with the TFLite Micro implementation; board must outlive it.
void tflm_backend_init(const TflmBoard* board, proto_backend_t* backend);

#endif
