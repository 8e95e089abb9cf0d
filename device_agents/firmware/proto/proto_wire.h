/* Constants of serial protocol v1 and little-endian field access.
 *
 * Wire grammar of one frame (SERIAL_PROTOCOL.md section 1), all integers little-endian:
 *     A5 5A | VER u8 | TYPE u8 | SEQ u8 | LEN u16 | HCRC u16 | PAYLOAD[LEN] | CRC u32
 * The accessors below never depend on the host's byte order or alignment, so the same code is
 * correct on x86, Cortex-M and Xtensa.
 */
#ifndef PROTO_WIRE_H
#define PROTO_WIRE_H

#include <stdint.h>

#define PROTO_VERSION 1u
#define PROTO_SYNC0 0xA5u
#define PROTO_SYNC1 0x5Au
#define PROTO_HEADER_SIZE 9u
#define PROTO_OVERHEAD 13u /* header + CRC-32 */
#define PROTO_MAX_PAYLOAD_V1 8192u
#define PROTO_MIN_PAYLOAD 64u
#define PROTO_INTER_BYTE_TIMEOUT_MS 100u /* section 1.1: an idle partial frame is noise */

/* Message types (section 3); a reply is its request's type | 0x80. */
enum proto_type {
    PROTO_T_HELLO = 0x01,
    PROTO_T_UPLOAD_BEGIN = 0x02,
    PROTO_T_UPLOAD_CHUNK = 0x03,
    PROTO_T_UPLOAD_END = 0x04,
    PROTO_T_USE_BUILTIN = 0x05,
    PROTO_T_GET_TENSOR = 0x06,
    PROTO_T_SET_INPUT = 0x07,
    PROTO_T_RANDOM_INPUT = 0x08,
    PROTO_T_RUN = 0x09,
    PROTO_T_GET_OUTPUT = 0x0A,
    PROTO_T_GET_PROFILE = 0x0B,
    PROTO_T_PING = 0x0C,
    PROTO_T_EVAL = 0x0D,
    PROTO_T_STREAM = 0x0E,
    PROTO_T_GET_STREAM = 0x0F,
    PROTO_T_OK = 0x80,
    PROTO_T_BOOT = 0xF0,
    PROTO_T_ERROR = 0xFF
};

/* Error codes (section 5). */
enum proto_error_code {
    PROTO_E_OK = 0,
    PROTO_E_UNKNOWN_TYPE = 1,
    PROTO_E_BAD_LENGTH = 2,
    PROTO_E_BAD_VERSION = 3,
    PROTO_E_BAD_STATE = 4,
    PROTO_E_MODEL_TOO_LARGE = 5,
    PROTO_E_BAD_OFFSET = 6,
    PROTO_E_HASH_MISMATCH = 7,
    PROTO_E_BAD_MODEL = 8,
    PROTO_E_UNSUPPORTED_OP = 9,
    PROTO_E_ARENA_TOO_SMALL = 10,
    PROTO_E_BAD_INDEX = 11,
    PROTO_E_UNSUPPORTED = 12,
    PROTO_E_INVOKE_FAILED = 13,
    PROTO_E_CRASHED = 14,
    PROTO_E_BAD_ARGUMENT = 15,
    PROTO_E_FRAME_TOO_LONG = 16,
    PROTO_E_INTERNAL = 255
};

/* HELLO flags (section 3.1). */
#define PROTO_FLAG_EMULATED 0x0001u
#define PROTO_FLAG_PROFILER 0x0002u
#define PROTO_FLAG_BUILTIN 0x0004u
#define PROTO_FLAG_CYCLE_COUNTER 0x0008u
#define PROTO_FLAG_EVAL 0x0010u /* set by the protocol layer when the backend has eval */
#define PROTO_FLAG_STREAM 0x0020u /* set by the protocol layer when the backend has ticks */

#define PROTO_MODE_WITH 0u
#define PROTO_MODE_WITHOUT 1u
#define PROTO_SAMPLE_FIELDS 4u /* loop, set_input, invoke, get_output */
#define PROTO_UNKNOWN_U32 0xFFFFFFFFu
#define PROTO_MAX_DIMS 8u
#define PROTO_MAX_ERROR_MESSAGE 200u

/* TfLiteType codes the protocol names (section 3.5). */
enum proto_dtype {
    PROTO_DT_FLOAT32 = 1,
    PROTO_DT_INT32 = 2,
    PROTO_DT_UINT8 = 3,
    PROTO_DT_INT64 = 4,
    PROTO_DT_BOOL = 6,
    PROTO_DT_INT16 = 7,
    PROTO_DT_INT8 = 9,
    PROTO_DT_FLOAT16 = 10
};

static inline uint16_t proto_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | ((uint16_t)p[1] << 8));
}

static inline uint32_t proto_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void proto_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void proto_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

#endif
