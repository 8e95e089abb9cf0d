/* See proto_fmt.h. */
#include "proto_fmt.h"

#include <stdarg.h>

/* Output state: *dropped is the first byte that did not fit (0 while everything fits). */
struct out {
    char *p;
    size_t size, n;
    unsigned char dropped;
    int full;
};

static void put(struct out *o, char c)
{
    if (o->n + 1 < o->size)
        o->p[o->n++] = c;
    else if (!o->full) {
        o->full = 1;
        o->dropped = (unsigned char)c;
    }
}

size_t proto_fmt(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    struct out o;
    if (out == NULL || size == 0)
        return 0;
    o.p = out;
    o.size = size;
    o.n = 0;
    o.dropped = 0;
    o.full = 0;
    va_start(ap, fmt);
    while (*fmt) {
        char c = *fmt++;
        if (c != '%') {
            put(&o, c);
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
                put(&o, *s++);
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
                put(&o, digits[--k]);
        } else {
            put(&o, c); /* %% and anything unknown: printed, never interpreted */
        }
    }
    va_end(ap);
    /* A truncated message never ends inside a UTF-8 character (SERIAL_PROTOCOL.md 5): move the cut
     * back while the first dropped byte is a continuation byte. */
    if (o.full)
        while (o.n > 0 && (o.dropped & 0xC0u) == 0x80u)
            o.dropped = (unsigned char)out[--o.n];
    out[o.n] = '\0';
    return o.n;
}
