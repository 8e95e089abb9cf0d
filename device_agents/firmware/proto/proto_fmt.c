/* See proto_fmt.h. */
#include "proto_fmt.h"

#include <stdarg.h>

static void put(char *out, size_t size, size_t *n, char c)
{
    if (*n + 1 < size)
        out[(*n)++] = c;
}

size_t proto_fmt(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    size_t n = 0;
    if (out == NULL || size == 0)
        return 0;
    va_start(ap, fmt);
    while (*fmt) {
        char c = *fmt++;
        if (c != '%') {
            put(out, size, &n, c);
            continue;
        }
        c = *fmt;
        if (c == '\0')
            break;
        fmt++;
        if (c == 's') {
            const char *s = va_arg(ap, const char *);
            if (s == NULL)
                s = "(null)";
            while (*s)
                put(out, size, &n, *s++);
        } else if (c == 'u' || (c == 'l' && *fmt == 'u')) {
            char digits[24];
            int k = 0;
            unsigned long v;
            if (c == 'l') {
                fmt++;
                v = va_arg(ap, unsigned long);
            } else {
                v = va_arg(ap, unsigned int);
            }
            do {
                digits[k++] = (char)('0' + (int)(v % 10u));
                v /= 10u;
            } while (v && k < (int)sizeof digits);
            while (k)
                put(out, size, &n, digits[--k]);
        } else {
            put(out, size, &n, c); /* %% and anything unknown: printed, never interpreted */
        }
    }
    va_end(ap);
    out[n] = '\0';
    return n;
}
