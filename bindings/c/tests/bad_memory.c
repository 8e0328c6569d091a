/*
 * bad_memory - an intentionally wrong program, to prove that the memory
 * check of the tests catches errors in C code using libstk:
 *   bad_memory leak   forgets to destroy a sequence (a leak LeakSanitizer
 *                     or valgrind must report)
 *   bad_memory oob    reads one byte past an element's data (a heap
 *                     overflow AddressSanitizer or valgrind must report)
 *   bad_memory ok     does it right, and must pass
 * It starts an env and a publisher first, so the Go runtime is as busy as
 * in the examples.
 */
#include <stdio.h>
#include <string.h>

#include "stk.h"

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "ok";
    stk_options o = {0};
    o.log_level = STK_LOG_OFF;
    stk_env env;
    stk_publisher pub;
    if (stk_env_create(&o, &env) != STK_OK || stk_publisher_create(env, NULL, NULL, 0, &pub) != STK_OK) {
        fprintf(stderr, "bad_memory: %s\n", stk_last_error());
        return 1;
    }
    stk_sequence *s;
    stk_sequence_create(1, "bad", STK_SEQ_DATA, &s);
    stk_sequence_add(s, 1, "0123456789", 10);
    stk_publisher_send(pub, s);
    const void *data;
    size_t len;
    stk_sequence_element(s, 0, NULL, &data, &len);
    volatile char c = 0;
    if (strcmp(mode, "oob") == 0)
        c = ((const char *)data)[len]; /* one past the end */
    printf("read %d\n", c);
    if (strcmp(mode, "leak") == 0)
        s = NULL; /* the only pointer to it: leaked */
    stk_sequence_destroy(s);
    stk_publisher_destroy(pub);
    stk_env_destroy(env);
    return 0;
}
