/* SHA-256 (FIPS 180-4), streaming, no allocation: the device checks an uploaded model against
 * the digest the host sent in UPLOAD_BEGIN (SERIAL_PROTOCOL.md section 3.4). */
#ifndef PROTO_SHA256_H
#define PROTO_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* the TFLite Micro backend is C++ */
#endif

typedef struct {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    uint8_t block[64];
    uint32_t used; /* bytes waiting in block */
} proto_sha256_t;

void proto_sha256_init(proto_sha256_t *s);
void proto_sha256_update(proto_sha256_t *s, const uint8_t *data, size_t len);
void proto_sha256_final(proto_sha256_t *s, uint8_t digest[32]);
/* One-shot digest of data[0..len). */
void proto_sha256(const uint8_t *data, size_t len, uint8_t digest[32]);

#ifdef __cplusplus
}
#endif

#endif
