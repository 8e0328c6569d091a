/*
 * stk_seq.c - sequences in plain C memory: building, reading and the
 * borrowed sequences the library hands to callbacks. Reading a sequence
 * never calls into Go.
 */
#include <string.h>

#include "stk_internal.h"

int stk_sequence_create(uint64_t id, const char *name, uint16_t type,
                        stk_sequence **out)
{
    if (out == NULL)
        return STK_EINVAL;
    *out = NULL;
    if (name != NULL && strlen(name) > STK_SEQ_MAX_NAME)
        return STK_EINVAL;
    stk_sequence *s = calloc(1, sizeof *s);
    if (s == NULL)
        return STK_ENOMEM;
    s->id = id;
    s->type = type;
    if (name != NULL && name[0] != '\0') {
        s->name = strdup(name);
        if (s->name == NULL) {
            free(s);
            return STK_ENOMEM;
        }
    }
    *out = s;
    return STK_OK;
}

static void free_elements(stk_sequence *s)
{
    for (size_t i = 0; i < s->count; i++)
        free((void *)s->elems[i].data);
    s->count = 0;
}

int stk_sequence_destroy(stk_sequence *seq)
{
    if (seq == NULL)
        return STK_OK;
    if (seq->borrowed)
        return STK_EINVAL; /* the library owns it */
    free_elements(seq);
    free(seq->elems);
    free(seq->name);
    free(seq);
    return STK_OK;
}

/* add_element appends a copy of an element, without the limit of
 * stk_sequence_add: a received sequence may carry more than 255 elements,
 * and its clone keeps them all. */
static int add_element(stk_sequence *seq, uint64_t user_type,
                       const void *data, size_t len)
{
    if (seq->count == seq->cap) {
        size_t cap = seq->cap ? seq->cap * 2 : 4;
        stk_element *e = realloc(seq->elems, cap * sizeof *e);
        if (e == NULL)
            return STK_ENOMEM;
        seq->elems = e;
        seq->cap = cap;
    }
    void *copy = NULL;
    if (len > 0) {
        copy = malloc(len);
        if (copy == NULL)
            return STK_ENOMEM;
        memcpy(copy, data, len);
    }
    seq->elems[seq->count].user_type = user_type;
    seq->elems[seq->count].data = copy;
    seq->elems[seq->count].len = len;
    seq->count++;
    return STK_OK;
}

int stk_sequence_clone(const stk_sequence *seq, stk_sequence **out)
{
    if (seq == NULL || out == NULL)
        return STK_EINVAL;
    *out = NULL;
    stk_sequence *c;
    int rc = stk_sequence_create(seq->id, seq->name, seq->type, &c);
    if (rc != STK_OK)
        return rc;
    for (size_t i = 0; i < seq->count; i++) {
        const stk_element *e = &seq->elems[i];
        if ((rc = add_element(c, e->user_type, e->data, e->len)) != STK_OK) {
            stk_sequence_destroy(c);
            return rc;
        }
    }
    *out = c;
    return STK_OK;
}

int stk_sequence_add(stk_sequence *seq, uint64_t user_type, const void *data,
                     size_t len)
{
    if (seq == NULL || seq->borrowed || (data == NULL && len > 0))
        return STK_EINVAL;
    if (seq->count >= STK_SEQ_MAX_ELEMENTS)
        return STK_ERANGE;
    return add_element(seq, user_type, data, len);
}

int stk_sequence_clear(stk_sequence *seq)
{
    if (seq == NULL || seq->borrowed)
        return STK_EINVAL;
    free_elements(seq);
    return STK_OK;
}

int stk_sequence_set_id(stk_sequence *seq, uint64_t id)
{
    if (seq == NULL || seq->borrowed)
        return STK_EINVAL;
    seq->id = id;
    return STK_OK;
}

uint64_t stk_sequence_id(const stk_sequence *seq)
{
    return seq ? seq->id : 0;
}

uint16_t stk_sequence_type(const stk_sequence *seq)
{
    return seq ? seq->type : 0;
}

const char *stk_sequence_name(const stk_sequence *seq)
{
    if (seq == NULL)
        return NULL;
    return seq->name ? seq->name : "";
}

int stk_sequence_count(const stk_sequence *seq)
{
    return seq ? (int)seq->count : STK_EINVAL;
}

int stk_sequence_element(const stk_sequence *seq, size_t i,
                         uint64_t *user_type, const void **data, size_t *len)
{
    if (seq == NULL)
        return STK_EINVAL;
    if (i >= seq->count)
        return STK_ERANGE;
    if (user_type)
        *user_type = seq->elems[i].user_type;
    if (data)
        *data = seq->elems[i].data;
    if (len)
        *len = seq->elems[i].len;
    return STK_OK;
}

const stk_element *stk_sequence_elements(const stk_sequence *seq,
                                         size_t *count)
{
    if (count)
        *count = seq ? seq->count : 0;
    if (seq == NULL || seq->count == 0)
        return NULL;
    return seq->elems;
}

/* ---- borrowed sequences (internal) ---- */

stk_sequence *stk__seq_borrowed_new(void)
{
    stk_sequence *s = calloc(1, sizeof *s);
    if (s)
        s->borrowed = 1;
    return s;
}

void stk__seq_borrowed_free(stk_sequence *seq)
{
    if (seq == NULL)
        return;
    free(seq->elems);
    free(seq->name);
    free(seq->buf);
    free(seq);
}

/* grow reallocs *p to at least need bytes, doubling to keep the number of
 * reallocations logarithmic over a stream. */
static int grow(void **p, size_t *cap, size_t need, size_t unit)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * unit);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

int stk__seq_reserve(stk_sequence *seq, size_t name_len, size_t count,
                     size_t bytes)
{
    if (grow((void **)&seq->name, &seq->name_cap, name_len + 1, 1) != 0 ||
        grow((void **)&seq->elems, &seq->cap, count, sizeof(stk_element)) != 0 ||
        grow((void **)&seq->buf, &seq->buf_cap, bytes, 1) != 0)
        return -1;
    return 0;
}
