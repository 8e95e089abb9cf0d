/* A tiny snprintf for error messages: %s, %u (unsigned int), %lu (unsigned long) and %% only.
 * It exists because a freestanding firmware build (no libc, e.g. the QEMU image) still has to
 * say which value was wrong, and it can never write past size bytes. */
#ifndef PROTO_FMT_H
#define PROTO_FMT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" { /* the TFLite Micro backend is C++ */
#endif

/* Always NUL-terminates when size >= 1; returns the length written (truncated to at most size - 1,
 * never inside a UTF-8 character). */
size_t proto_fmt(char *out, size_t size, const char *fmt, ...);

#ifdef __cplusplus
}
#endif

#endif
