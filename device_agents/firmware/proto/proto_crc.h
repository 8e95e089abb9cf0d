/* CRCs of serial protocol v1 (device_agents/wire/SERIAL_PROTOCOL.md section 1).
 *
 * CRC-16/CCITT-FALSE guards the 7 header bytes, CRC-32/IEEE (as zlib.crc32) the whole frame.
 * Both are bitwise, table-free: 16 lines of code beat 1.5 KiB of tables on a small MCU, and
 * at UART rates the CPU is never the bottleneck.
 */
#ifndef PROTO_CRC_H
#define PROTO_CRC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* the TFLite Micro backend is C++ */
#endif

/* CRC-16/CCITT-FALSE of data[0..len), continuing from crc (start with 0xFFFF). Check: 0x29B1. */
uint16_t proto_crc16(const uint8_t *data, size_t len, uint16_t crc);

/* CRC-32/IEEE of data[0..len), continuing from crc (start with 0). Check: 0xCBF43926. */
uint32_t proto_crc32(const uint8_t *data, size_t len, uint32_t crc);

#ifdef __cplusplus
}
#endif

#endif
