/*
 * stk_internal.h - declarations shared by the Go side (cgo preambles) and
 * the C side of libstk; not part of the API (see stk.h).
 *
 * The Go side exports stkgo_* functions (declared in the cgo-generated
 * _cgo_export.h) that take handles as uint64_t and callback and user
 * pointers as uintptr_t; stk_api.c implements stk.h on top of them. That
 * way the Go side never holds a C pointer as a pointer, and the C compiler
 * checks stk.h against its implementation.
 */
#ifndef STK_INTERNAL_H
#define STK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "stk.h"

/* The memory layout of a sequence: plain C memory, read by C accessors and
 * by the Go side (which sends it, or fills a borrowed one on receive). */
struct stk_sequence {
    uint64_t id;
    uint16_t type;
    /* borrowed: owned by the library, given to a callback. Its element data
     * live in buf, its name in name (capacity name_cap). Otherwise every
     * element's data is its own malloc'd block and name is malloc'd. */
    uint16_t borrowed;
    char *name;        /* NUL-terminated; NULL means "" */
    size_t name_cap;   /* borrowed only */
    stk_element *elems;
    size_t count, cap;
    unsigned char *buf; /* borrowed only */
    size_t buf_cap;
};

/* stk__seq_borrowed_new makes an empty borrowed sequence (NULL when out of
 * memory); stk__seq_borrowed_free frees it. */
stk_sequence *stk__seq_borrowed_new(void);
void stk__seq_borrowed_free(stk_sequence *seq);

/* stk__seq_reserve grows a borrowed sequence so that it can hold a name of
 * name_len bytes (plus NUL), count elements and bytes of element data.
 * Returns 0, or -1 when out of memory (the sequence is unchanged). */
int stk__seq_reserve(stk_sequence *seq, size_t name_len, size_t count,
                     size_t bytes);

/* Callback trampolines: Go cannot call a C function pointer. Each marks the
 * calling thread as running a callback of handle h (see stk__in_callback)
 * for the duration of the call. */
void stk__call_seq(uintptr_t cb, uintptr_t user, uint64_t h,
                   const stk_sequence *seq);
void stk__call_name(uintptr_t cb, uintptr_t user, uint64_t h,
                    const stk_name_info *info);
void stk__call_done(uintptr_t cb, uintptr_t user, uint64_t h, int answers,
                    int status);

/* stk__in_callback returns how many callbacks of handle h the calling
 * thread is running (0 or 1 in practice); stk__callback_depth how many
 * callbacks of any handle. */
int stk__in_callback(uint64_t h);
int stk__callback_depth(void);

/* stk__set_error stores the last error message of the calling thread
 * (n bytes at msg, copied). */
void stk__set_error(const char *msg, size_t n);

#endif /* STK_INTERNAL_H */
