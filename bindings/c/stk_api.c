/*
 * stk_api.c - the public functions of stk.h that are not about sequences:
 * thin wrappers over the Go exports (stkgo_*, see _cgo_export.h) that turn
 * opaque handles into uint64_t and pointers into uintptr_t, plus the
 * per-thread error message and the callback trampolines.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "_cgo_export.h"
#include "stk_internal.h"

/* ---- version and errors ---- */

const char *stk_version(void)
{
#define STR_(x) #x
#define STR(x) STR_(x)
    return "stk-go C binding " STR(STK_API_VERSION_MAJOR) "." STR(STK_API_VERSION_MINOR);
}

int stk_api_version(void)
{
    return STK_API_VERSION_MAJOR * 1000 + STK_API_VERSION_MINOR;
}

const char *stk_strerror(int code)
{
    switch (code) {
    case STK_OK: return "success";
    case STK_EINVAL: return "invalid argument";
    case STK_EHANDLE: return "unknown or destroyed handle";
    case STK_ENOMEM: return "out of memory";
    case STK_EADDR: return "bad address";
    case STK_ENET: return "network error";
    case STK_ETIMEDOUT: return "timed out";
    case STK_ENOTFOUND: return "name not found";
    case STK_ECLOSED: return "closed";
    case STK_EQUEUEFULL: return "peer too slow: queue full";
    case STK_ESEQUENCE: return "sequence cannot be sent";
    case STK_ERANGE: return "out of range";
    case STK_EBUSY: return "not allowed from a callback";
    case STK_EINTERNAL: return "internal error";
    default: return "unknown error";
    }
}

/* A fixed buffer per thread: nothing to free when a (Go-created) thread
 * exits, and long messages are cut, not lost. */
static __thread char last_error[1024];

void stk__set_error(const char *msg, size_t n)
{
    if (msg == NULL)
        n = 0;
    if (n >= sizeof last_error)
        n = sizeof last_error - 1;
    memcpy(last_error, msg, n);
    last_error[n] = '\0';
}

const char *stk_last_error(void)
{
    return last_error;
}

/* fail sets the thread's error message, for the few errors found in C,
 * and returns code. */
static int fail(int code, const char *format, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    vsnprintf(last_error, sizeof last_error, format, ap);
    va_end(ap);
    return code;
}

/* ---- callbacks ---- */

/* The handles whose callbacks this thread is running, innermost last, so
 * that destroying an object from its own callback does not wait for
 * itself. Callbacks do not nest in practice; the stack is for safety. */
#define CB_STACK 16
static __thread uint64_t cb_stack[CB_STACK];
static __thread int cb_depth;

static void cb_push(uint64_t h)
{
    if (cb_depth < CB_STACK)
        cb_stack[cb_depth] = h;
    cb_depth++;
}

static void cb_pop(void)
{
    cb_depth--;
}

void stk__call_seq(uintptr_t cb, uintptr_t user, uint64_t h,
                   const stk_sequence *seq)
{
    cb_push(h);
    ((stk_sequence_cb)cb)((void *)user, seq);
    cb_pop();
}

void stk__call_name(uintptr_t cb, uintptr_t user, uint64_t h,
                    const stk_name_info *info)
{
    cb_push(h);
    ((stk_name_cb)cb)((void *)user, info);
    cb_pop();
}

void stk__call_done(uintptr_t cb, uintptr_t user, uint64_t h, int answers,
                    int status)
{
    cb_push(h);
    ((stk_lookup_done_cb)cb)((void *)user, answers, status);
    cb_pop();
}

int stk__in_callback(uint64_t h)
{
    int n = cb_depth < CB_STACK ? cb_depth : CB_STACK;
    int count = 0;
    for (int i = 0; i < n; i++)
        if (cb_stack[i] == h)
            count++;
    return count;
}

int stk__callback_depth(void)
{
    return cb_depth;
}

/* ---- handles ---- */

#define H(x) ((uint64_t)(uintptr_t)(x))
#define P(x) ((uintptr_t)(x))

/* out_handle stores a handle number as the opaque pointer type. */
#define OUT(out, type, h) (*(out) = (type)(uintptr_t)(h))

/* ---- environment ---- */

/* The stk_options of API 1.1, before token_file: what binaries built
 * against an older stk.h pass to the function stk_env_create. */
#define OPTIONS_SIZE_1_1 offsetof(stk_options, token_file)

int stk_env_create_sized(const stk_options *opts, size_t opts_size, stk_env *out)
{
    if (out == NULL)
        return STK_EINVAL;
    *out = NULL;
    /* Copy what the caller's stk_options has; the fields it lacks stay
     * zero, their default. */
    stk_options o;
    memset(&o, 0, sizeof o);
    if (opts != NULL) {
        if (opts_size < OPTIONS_SIZE_1_1)
            return fail(STK_EINVAL, "stk_env_create: opts_size %zu is below the %zu bytes of the first stk_options",
                             opts_size, (size_t)OPTIONS_SIZE_1_1);
        for (size_t i = sizeof o; i < opts_size; i++)
            if (((const unsigned char *)opts)[i] != 0)
                return fail(STK_EINVAL, "stk_env_create: stk_options of a newer stk.h (%zu bytes) sets a field this library (API %d.%d, %zu bytes) does not know",
                                 opts_size, STK_API_VERSION_MAJOR, STK_API_VERSION_MINOR, sizeof o);
        memcpy(&o, opts, opts_size < sizeof o ? opts_size : sizeof o);
    }
    /* Read here, not in Go: the Go runtime keeps the environment of the
     * moment the library was loaded, and a program (Python's os.environ)
     * may set STK_TOKEN after that. The same for the TLS files. */
    const char *env_token = getenv("STK_TOKEN");
    const char *env_ca = getenv("STK_TLS_CA"), *env_cert = getenv("STK_TLS_CERT"), *env_key = getenv("STK_TLS_KEY");
    uint64_t h = 0;
    int rc = stkgo_env_create(&o, (char *)env_token, (char *)env_ca, (char *)env_cert, (char *)env_key, &h);
    if (rc == STK_OK)
        OUT(out, stk_env, h);
    return rc;
}

/* The function of API 1.0 and 1.1 (stk.h's macro of that name calls
 * stk_env_create_sized); the parentheses keep the macro out. */
int (stk_env_create)(const stk_options *opts, stk_env *out)
{
    return stk_env_create_sized(opts, OPTIONS_SIZE_1_1, out);
}

int stk_env_destroy(stk_env env)
{
    return stkgo_env_destroy(H(env));
}

int stk_env_wait_name_server(stk_env env, int timeout_ms)
{
    return stkgo_env_wait_name_server(H(env), timeout_ms);
}

/* ---- publishers ---- */

int stk_publisher_create(stk_env env, const char *name, const char *address,
                         int linger_s, stk_publisher *out)
{
    if (out == NULL)
        return STK_EINVAL;
    *out = NULL;
    uint64_t h = 0;
    int rc = stkgo_publisher_create(H(env), (char *)name, (char *)address,
                                    linger_s, &h);
    if (rc == STK_OK)
        OUT(out, stk_publisher, h);
    return rc;
}

int stk_publisher_address(stk_publisher pub, char *buf, size_t len)
{
    return stkgo_publisher_address(H(pub), buf, len);
}

int stk_publisher_subscribers(stk_publisher pub)
{
    return stkgo_publisher_subscribers(H(pub));
}

int stk_publisher_send(stk_publisher pub, const stk_sequence *seq)
{
    return stkgo_publisher_send(H(pub), (stk_sequence *)seq);
}

int stk_publisher_send_data(stk_publisher pub, uint64_t id, const char *name,
                            uint16_t type, uint64_t user_type,
                            const void *data, size_t len)
{
    if (data == NULL && len > 0)
        return STK_EINVAL;
    return stkgo_publisher_send_data(H(pub), id, (char *)name, type,
                                     user_type, (void *)data, len);
}

int stk_publisher_send_data_batch(stk_publisher pub, uint64_t id,
                                  const char *name, uint16_t type,
                                  uint64_t user_type, const void *data,
                                  const size_t *lens, size_t n)
{
    if (n > 0 && lens == NULL)
        return STK_EINVAL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += lens[i];
    if (data == NULL && total > 0)
        return STK_EINVAL;
    return stkgo_publisher_send_data_batch(H(pub), id, (char *)name, type,
                                           user_type, (void *)data,
                                           (size_t *)lens, n);
}

int stk_publisher_stats(stk_publisher pub, stk_flow_stats *stats)
{
    return stkgo_publisher_stats(H(pub), stats);
}

int stk_publisher_destroy(stk_publisher pub)
{
    return stkgo_publisher_destroy(H(pub));
}

/* ---- subscribers ---- */

int stk_subscriber_create(stk_env env, const char *name, stk_sequence_cb cb,
                          void *user, stk_subscriber *out)
{
    if (out == NULL)
        return STK_EINVAL;
    *out = NULL;
    uint64_t h = 0;
    int rc = stkgo_subscriber_create(H(env), (char *)name, P(cb), P(user), &h);
    if (rc == STK_OK)
        OUT(out, stk_subscriber, h);
    return rc;
}

int stk_subscriber_connect(stk_env env, const char *address,
                           stk_sequence_cb cb, void *user,
                           stk_subscriber *out)
{
    if (out == NULL)
        return STK_EINVAL;
    *out = NULL;
    uint64_t h = 0;
    int rc = stkgo_subscriber_connect(H(env), (char *)address, P(cb), P(user),
                                      &h);
    if (rc == STK_OK)
        OUT(out, stk_subscriber, h);
    return rc;
}

int stk_subscriber_stats(stk_subscriber sub, stk_flow_stats *stats)
{
    return stkgo_subscriber_stats(H(sub), stats);
}

int stk_subscriber_destroy(stk_subscriber sub)
{
    return stkgo_subscriber_destroy(H(sub));
}

/* ---- names ---- */

int stk_name_register(stk_env env, const stk_name_info *info, int timeout_ms)
{
    return stkgo_name_register(H(env), (stk_name_info *)info, timeout_ms);
}

int stk_name_unregister(stk_env env, const char *name, const char *group)
{
    return stkgo_name_unregister(H(env), (char *)name, (char *)group);
}

int stk_name_lookup(stk_env env, const char *name, const char *group,
                    int expiration_ms, stk_name_cb on_answer,
                    stk_lookup_done_cb on_done, void *user, stk_lookup *out)
{
    if (out == NULL)
        return STK_EINVAL;
    *out = NULL;
    uint64_t h = 0;
    int rc = stkgo_name_lookup(H(env), (char *)name, (char *)group,
                               expiration_ms, P(on_answer), P(on_done),
                               P(user), &h);
    if (rc == STK_OK)
        OUT(out, stk_lookup, h);
    return rc;
}

int stk_lookup_destroy(stk_lookup lookup)
{
    return stkgo_lookup_destroy(H(lookup));
}

int stk_name_subscribe(stk_env env, const char *name, const char *group,
                       stk_name_cb cb, void *user, stk_name_subscription *out)
{
    if (out == NULL)
        return STK_EINVAL;
    *out = NULL;
    uint64_t h = 0;
    int rc = stkgo_name_subscribe(H(env), (char *)name, (char *)group, P(cb),
                                  P(user), &h);
    if (rc == STK_OK)
        OUT(out, stk_name_subscription, h);
    return rc;
}

int stk_name_subscription_destroy(stk_name_subscription sub)
{
    return stkgo_name_subscription_destroy(H(sub));
}

/* ---- services ---- */

int stk_service_create(stk_env env, const char *name,
                       const stk_service_options *opts, stk_service *out)
{
    if (out == NULL)
        return STK_EINVAL;
    *out = NULL;
    uint64_t h = 0;
    int rc = stkgo_service_create(H(env), (char *)name,
                                  (stk_service_options *)opts, &h);
    if (rc == STK_OK)
        OUT(out, stk_service, h);
    return rc;
}

int stk_service_set_state(stk_service svc, int state)
{
    return stkgo_service_set_state(H(svc), state);
}

int stk_service_set_state_name(stk_service svc, int state, const char *name)
{
    return stkgo_service_set_state_name(H(svc), state, (char *)name);
}

int stk_service_state(stk_service svc)
{
    return stkgo_service_state(H(svc));
}

int stk_service_set_checkpoint(stk_service svc, uint64_t checkpoint)
{
    return stkgo_service_set_checkpoint(H(svc), checkpoint);
}

int stk_service_id(stk_service svc, uint64_t *id)
{
    if (id == NULL)
        return STK_EINVAL;
    return stkgo_service_id(H(svc), id);
}

int stk_service_destroy(stk_service svc)
{
    return stkgo_service_destroy(H(svc));
}
