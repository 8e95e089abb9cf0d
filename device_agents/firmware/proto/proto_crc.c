/* Bitwise CRC-16/CCITT-FALSE and CRC-32/IEEE; see proto_crc.h. */
#include "proto_crc.h"

uint16_t proto_crc16(const uint8_t *data, size_t len, uint16_t crc)
{
    size_t i;
    int bit;
    for (i = 0; i < len; i++) {
        crc = (uint16_t)(crc ^ ((uint16_t)data[i] << 8));
        for (bit = 0; bit < 8; bit++)
            crc = (uint16_t)((crc & 0x8000u) ? (((uint32_t)crc << 1) ^ 0x1021u) : ((uint32_t)crc << 1));
    }
    return crc;
}

uint32_t proto_crc32(const uint8_t *data, size_t len, uint32_t crc)
{
    size_t i;
    int bit;
    /* zlib convention: the running value is kept un-inverted between calls. */
    crc = ~crc;
    for (i = 0; i < len; i++) {
        crc ^= data[i];
        for (bit = 0; bit < 8; bit++)
            crc = (crc & 1u) ? ((crc >> 1) ^ 0xEDB88320u) : (crc >> 1);
    }
    return ~crc;
}
