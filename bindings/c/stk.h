/*
 * stk.h - the C binding of the Go Sequence Toolkit (github.com/stk-go/stk).
 *
 * Programs not written in Go use the Go implementation through this header
 * and libstk.so (built with `go build -buildmode=c-shared`, see
 * bindings/c/Makefile): register and look up names, publish and subscribe
 * sequences, report service states and smartbeats to a monitor (stkd).
 *
 * ---------------------------------------------------------------------------
 * CONVENTIONS
 * ---------------------------------------------------------------------------
 * Errors
 *   Functions return an int: STK_OK (0) or a negative STK_E... code (a few
 *   return a count >= 0 instead, said where they do). stk_strerror() names a
 *   code; stk_last_error() gives the detailed message of the last failure on
 *   the calling thread.
 *
 * Handles
 *   stk_env, stk_publisher, stk_subscriber, stk_lookup, stk_name_subscription
 *   and stk_service are opaque handles: numbers from a table inside the
 *   library, never addresses of memory. Do not dereference them. A handle
 *   that was destroyed (or never existed) is detected: functions given one
 *   return STK_EHANDLE and do nothing, so destroying twice is harmless.
 *   stk_sequence is different: it is plain C memory (malloc'd by the
 *   library) so that reading its elements needs no call into Go. Using a
 *   destroyed stk_sequence is undefined behaviour, as with free().
 *
 * Ownership
 *   - Every stk_X_create has its stk_X_destroy; call it exactly once.
 *     stk_env_destroy also destroys whatever was created from that env and
 *     is still alive (their handles then give STK_EHANDLE), but programs
 *     should destroy children first.
 *   - Strings and buffers passed IN are copied before the call returns; the
 *     caller keeps ownership and may free or reuse them at once.
 *   - Pointers passed OUT to callbacks (sequences, strings, stk_name_info)
 *     are owned by the library and valid only during the callback. Copy what
 *     you keep (stk_sequence_clone for a sequence).
 *   - Pointers returned by getters (stk_sequence_name, stk_sequence_elements,
 *     ...) point into the object and stay valid until it is changed or
 *     destroyed.
 *   - stk_version, stk_strerror return static strings; never free them.
 *   - The library never frees memory it did not allocate, and never keeps a
 *     pointer given to it except the `user` pointers of callbacks, which it
 *     passes back untouched.
 *
 * Threads and callbacks
 *   All functions are safe to call from any thread, concurrently, except
 *   that one stk_sequence must not be changed while another thread uses it.
 *   Callbacks run on threads created by the Go runtime, never on the thread
 *   that registered them; callbacks of one subscriber may run concurrently
 *   when it receives from several publishers. The library holds no lock
 *   while it calls a callback, so a callback may call any function of this
 *   header (send on a publisher, look a name up, destroy its own lookup or
 *   subscriber, ...) except stk_env_destroy, which returns STK_EBUSY there.
 *   Callbacks must not block for long: a callback delays the deliveries
 *   behind it on the same connection. When stk_X_destroy returns, no
 *   callback of X is running or will run again (except the one that called
 *   destroy, if it did), so its `user` data may be freed. To keep that
 *   promise, destroying X from a callback of another object Y waits for X's
 *   running callbacks: do not let X's callback destroy Y while Y's destroys
 *   X at the same moment.
 *
 * Logging
 *   The library logs to stderr at the level set in stk_options.log_level.
 *
 * Tokens
 *   A name server whose access policy asks for a token (stkd --policy)
 *   gets the one of stk_options.token_file, a file of one line
 *   NAME:SECRET, or, when token_file is NULL or "", of the environment
 *   variable STK_TOKEN (read by stk_env_create, as the Go programs'
 *   --token-file and STK_TOKEN). The env's name-server connection shows it
 *   in its keep-alives; it is never part of a registration.
 *
 * TLS
 *   A name server (or monitor) address "tls:ip:port" is reached over TLS,
 *   as stkd --names-tls (--monitor-tls) serves it. The CAs trusted are
 *   those of stk_options.tls_ca_file (PEM), else of the environment
 *   variable STK_TLS_CA, else the system's roots. A server asking for a
 *   client certificate (mutual TLS, stkd --tls-client-ca) gets the one of
 *   tls_cert_file and its key tls_key_file (PEM), else of STK_TLS_CERT and
 *   STK_TLS_KEY: both or neither. stk_env_create reads the files (and the
 *   variables) and fails with STK_EINVAL if they do not load; the
 *   certificate is read again when its files change. The Go programs'
 *   --tls-ca, --tls-cert, --tls-key take the same variables. Data flows
 *   between publishers and subscribers stay plain TCP/UDP.
 * ---------------------------------------------------------------------------
 */
#ifndef STK_H
#define STK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                  */
/* ------------------------------------------------------------------------ */

/* The API version of this header. The major number changes when the API
 * changes incompatibly; stk_api_version() tells what the loaded library
 * implements. */
#define STK_API_VERSION_MAJOR 1
#define STK_API_VERSION_MINOR 3

/* stk_version returns the library version, e.g. "stk-go C binding 1.3";
 * a static string. */
const char *stk_version(void);

/* stk_api_version returns STK_API_VERSION_MAJOR * 1000 +
 * STK_API_VERSION_MINOR of the loaded library: a program (or a ctypes
 * binding) can check that it matches the header it was written against. */
int stk_api_version(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

enum {
    STK_OK         = 0,
    STK_EINVAL     = -1,  /* invalid argument: NULL, out of range, too long */
    STK_EHANDLE    = -2,  /* unknown or already destroyed handle */
    STK_ENOMEM     = -3,  /* out of memory */
    STK_EADDR      = -4,  /* malformed or unsupported address string */
    STK_ENET       = -5,  /* socket error: cannot listen, bind or connect */
    STK_ETIMEDOUT  = -6,  /* no answer in time (name server, monitor, lookup) */
    STK_ENOTFOUND  = -7,  /* a name has no registration */
    STK_ECLOSED    = -8,  /* the object is closing or closed */
    STK_EQUEUEFULL = -9,  /* a peer's outbound queue is full: sequence dropped
                             or the too slow peer disconnected */
    STK_ESEQUENCE  = -10, /* the sequence cannot be sent: type 0, more than
                             255 elements, too large */
    STK_ERANGE     = -11, /* index out of range */
    STK_EBUSY      = -12, /* not allowed from a callback (stk_env_destroy) */
    STK_EINTERNAL  = -99  /* a bug in the library; stk_last_error says more */
};

/* stk_strerror returns a short static description of an STK_E... code
 * (or "unknown error" for any other value). */
const char *stk_strerror(int code);

/* stk_last_error returns the detailed message of the last failing call made
 * on the calling thread, e.g. "listen tcp 127.0.0.1:80: permission denied",
 * or "" if none failed yet. Successful calls do not clear it. The string is
 * owned by the library and stays valid until the next failing call on the
 * same thread. */
const char *stk_last_error(void);

/* ------------------------------------------------------------------------ */
/* Environment                                                              */
/* ------------------------------------------------------------------------ */

/* An environment holds the name-server client (connected lazily, on first
 * use, then kept and reconnected), the smartbeat sender of its services and
 * the defaults below. Most programs create one. */
typedef struct stk_env_s *stk_env;

enum {
    STK_LOG_DEFAULT = 0, /* STK_LOG_WARN */
    STK_LOG_DEBUG   = 1,
    STK_LOG_INFO    = 2,
    STK_LOG_WARN    = 3,
    STK_LOG_ERROR   = 4,
    STK_LOG_OFF     = 5
};

/* stk_options configure an environment. Zero (or NULL) fields take the
 * defaults; a NULL options pointer means all defaults. Strings are copied. */
typedef struct stk_options {
    /* Name server address, "[tcp|udp|tls:]ip[:port]" (tls: see "TLS").
     * NULL or "": "tcp:127.0.0.1:20002". */
    const char *name_server;
    /* Monitor (stkd) address of services: "[tcp|udp|multicast|tls:]ip[:port]"
     * or "lookup:monitor". NULL: "tcp:127.0.0.1:20001". "" : services are
     * not monitored (unless stk_service_options.monitor says otherwise). */
    const char *monitor;
    /* Name group of registrations and lookups that name none.
     * NULL or "": the default group. */
    const char *group;
    /* STK_LOG_...; 0 means STK_LOG_WARN. */
    int log_level;
    /* Smartbeat period of the env's services in ms; 0: 500. */
    int smartbeat_period_ms;
    /* How long a lookup waits for answers when it gives no expiration, in
     * ms; 0: 1000. (stkd says when all answers are sent, so lookups usually
     * end much sooner.) */
    int lookup_expiration_ms;
    /* API 1.2. File holding the name-service token, one line NAME:SECRET
     * (see "Tokens" above). NULL or "": $STK_TOKEN, if set; else none. */
    const char *token_file;
    /* API 1.3. TLS for a "tls:" name server or monitor (see "TLS" above):
     * the CAs to trust (PEM); NULL or "": $STK_TLS_CA, else the system's
     * roots. */
    const char *tls_ca_file;
    /* API 1.3. Client certificate (PEM) shown to a tls: server asking for
     * one, and its private key (PEM); both or neither. NULL or "":
     * $STK_TLS_CERT and $STK_TLS_KEY, if set; else none. */
    const char *tls_cert_file;
    const char *tls_key_file;
} stk_options;

/* stk_env_create makes an environment. It does not connect yet and fails
 * only on bad options (STK_EADDR, STK_EINVAL; STK_EINVAL too for a
 * token_file that cannot be read or a token that is not NAME:SECRET, and
 * for TLS files that do not load).
 *
 * stk_options grows at its end (token_file came with API 1.2, the tls_
 * fields with 1.3), so that
 * programs built against an older stk.h keep working: the macro below makes
 * every call pass the size of the stk_options this program was compiled
 * with (as zlib's deflateInit does), and the function stk_env_create, which
 * binaries of API 1.0 and 1.1 call, reads the fields of API 1.1 only. A size
 * larger than this library's stk_options is accepted when the bytes beyond
 * are zero (their defaults) and refused (STK_EINVAL) otherwise. */
int stk_env_create(const stk_options *opts, stk_env *out);
int stk_env_create_sized(const stk_options *opts, size_t opts_size, stk_env *out);
#define stk_env_create(opts, out) stk_env_create_sized((opts), sizeof(stk_options), (out))

/* stk_env_destroy closes the name-server connection (the server then keeps
 * this env's registrations for their linger), destroys every object still
 * alive that was created from env (services send their DESTROY, publishers
 * deliver what is queued for at most 5 s) and frees env. STK_EBUSY when
 * called from a callback. */
int stk_env_destroy(stk_env env);

/* stk_env_wait_name_server connects to the name server if not yet done and
 * waits until the connection is up: STK_OK, or STK_ETIMEDOUT after
 * timeout_ms (< 0: 5000). The connection is kept either way. */
int stk_env_wait_name_server(stk_env env, int timeout_ms);

/* ------------------------------------------------------------------------ */
/* Sequences                                                                */
/* ------------------------------------------------------------------------ */

/* A sequence is STK's message: an id, an optional name, a type and an
 * ordered list of typed elements (a user type and bytes). */
typedef struct stk_sequence stk_sequence;

/* One element, as stk_sequence_elements and stk_name_info.meta give it. */
typedef struct stk_element {
    uint64_t user_type;
    const void *data; /* len bytes; NULL when len is 0 */
    size_t len;
} stk_element;

/* Sequence types (stk_sequence_create's type). Applications send
 * STK_SEQ_DATA; 0 is invalid and cannot be sent. */
enum {
    STK_SEQ_INVALID = 0,
    STK_SEQ_DATA    = 1,
    STK_SEQ_KVPAIR  = 2,
    STK_SEQ_MGMT    = 3
};

/* The element user type of the publish/subscribe examples' payload. */
#define STK_UT_EXAMPLE_DATA 0x135

/* Limits: a TCP sequence carries at most 255 elements (C receivers crash
 * on more); a name is at most 65534 bytes. */
#define STK_SEQ_MAX_ELEMENTS 255
#define STK_SEQ_MAX_NAME 65534

/* stk_sequence_create makes an empty sequence. name may be NULL (no name)
 * and is copied. Free it with stk_sequence_destroy. */
int stk_sequence_create(uint64_t id, const char *name, uint16_t type,
                        stk_sequence **out);

/* stk_sequence_destroy frees seq and its elements; NULL is ignored.
 * STK_EINVAL for a sequence given to a callback, which the library owns. */
int stk_sequence_destroy(stk_sequence *seq);

/* stk_sequence_clone makes a deep copy of seq, owned by the caller: the way
 * to keep a sequence received in a callback. */
int stk_sequence_clone(const stk_sequence *seq, stk_sequence **out);

/* stk_sequence_add appends an element holding a COPY of len bytes at data
 * (data may be NULL when len is 0). Pointers from stk_sequence_elements or
 * stk_sequence_element taken before may be invalidated. STK_ERANGE past
 * STK_SEQ_MAX_ELEMENTS elements. */
int stk_sequence_add(stk_sequence *seq, uint64_t user_type, const void *data,
                     size_t len);

/* stk_sequence_clear removes every element, keeping id, name and type, so a
 * sequence can be refilled and sent again. */
int stk_sequence_clear(stk_sequence *seq);

/* stk_sequence_set_id changes the sequence id. */
int stk_sequence_set_id(stk_sequence *seq, uint64_t id);

/* Getters. For a NULL seq they return 0, 0, NULL, STK_EINVAL. */
uint64_t stk_sequence_id(const stk_sequence *seq);
uint16_t stk_sequence_type(const stk_sequence *seq);
/* The name, "" when the sequence has none; owned by seq. */
const char *stk_sequence_name(const stk_sequence *seq);
/* The number of elements (>= 0), or STK_EINVAL. */
int stk_sequence_count(const stk_sequence *seq);

/* stk_sequence_element gives element i (0-based): its user type, a pointer
 * to its bytes and their length (any out pointer may be NULL). The bytes
 * belong to seq: valid until seq is changed or destroyed (for a callback's
 * sequence: until the callback returns). STK_ERANGE if i >= count. */
int stk_sequence_element(const stk_sequence *seq, size_t i,
                         uint64_t *user_type, const void **data, size_t *len);

/* stk_sequence_elements returns all elements as an array of *count
 * entries, with the same validity as stk_sequence_element; NULL (and
 * *count 0) when there are none. One call for all elements suits bindings
 * where each call is expensive. */
const stk_element *stk_sequence_elements(const stk_sequence *seq,
                                         size_t *count);

/* ------------------------------------------------------------------------ */
/* Flow statistics                                                          */
/* ------------------------------------------------------------------------ */

typedef struct stk_flow_stats {
    uint64_t sequences_in, sequences_out;
    uint64_t bytes_in, bytes_out; /* wire bytes, headers included */
    uint64_t dropped;      /* sequences not delivered (queue full, lost
                              with a connection) */
    uint64_t reconnects;   /* connections a subscriber re-established */
    int connections;       /* open connections now */
} stk_flow_stats;

/* ------------------------------------------------------------------------ */
/* Publishing                                                               */
/* ------------------------------------------------------------------------ */

/* A publisher is a TCP server data flow: subscribers connect to it and get
 * every sequence it sends. */
typedef struct stk_publisher_s *stk_publisher;

/* stk_publisher_create listens on address ("[tcp:]ip:port"; NULL or "":
 * "127.0.0.1:0", port 0 picks a free one; only TCP is supported:
 * STK_EADDR otherwise, STK_ENET when it cannot listen) and, when name is
 * not NULL, registers name with the name server with the bound address (for
 * an unspecified IP, 0.0.0.0, the address of this host's interface toward
 * the name server, which other hosts can reach), protocol "tcp",
 * fault-tolerance state active and the given linger (seconds the name
 * outlives this publisher; < 0: 5). It waits up to 5 s for the name
 * server's confirmation: STK_ETIMEDOUT if none came (nothing is created
 * then; the name service is down or unreachable). */
int stk_publisher_create(stk_env env, const char *name, const char *address,
                         int linger_s, stk_publisher *out);

/* stk_publisher_address writes the bound address, "tcp:ip:port" with a NUL,
 * into buf (len bytes); STK_ERANGE if it does not fit. */
int stk_publisher_address(stk_publisher pub, char *buf, size_t len);

/* stk_publisher_subscribers returns the number of connected subscribers
 * (>= 0) or an error code. */
int stk_publisher_subscribers(stk_publisher pub);

/* stk_publisher_send sends seq to every connected subscriber (none: it goes
 * nowhere and the call succeeds, as in STK). seq is encoded before the call
 * returns and may be changed or destroyed at once. When a subscriber's
 * queue (4 MiB) stays full for 1 s, that subscriber is disconnected and
 * STK_EQUEUEFULL returned; the others still get seq. STK_ESEQUENCE for type
 * 0 or more than 255 elements. */
int stk_publisher_send(stk_publisher pub, const stk_sequence *seq);

/* stk_publisher_send_data sends a one-element sequence in one call, without
 * building an stk_sequence: id, name (may be NULL), type and one element of
 * user_type holding len bytes at data. Same results as stk_publisher_send. */
int stk_publisher_send_data(stk_publisher pub, uint64_t id, const char *name,
                            uint16_t type, uint64_t user_type,
                            const void *data, size_t len);

/* stk_publisher_send_data_batch sends n one-element sequences in one call
 * (bindings where each call is expensive pay once per batch): all with id,
 * name (may be NULL), type and user_type; element i holds lens[i] bytes,
 * the elements laid end to end in data (sum of lens bytes). Returns n, or
 * the negative code of the first failure: the sequences before it were
 * sent, and the rest were not, except after STK_EQUEUEFULL, which (as for
 * stk_publisher_send) does not stop the batch and is returned at the end. */
int stk_publisher_send_data_batch(stk_publisher pub, uint64_t id,
                                  const char *name, uint16_t type,
                                  uint64_t user_type, const void *data,
                                  const size_t *lens, size_t n);

/* stk_publisher_stats fills *stats with the publisher's counters. */
int stk_publisher_stats(stk_publisher pub, stk_flow_stats *stats);

/* stk_publisher_destroy forgets the registration (the name server keeps it
 * for its linger), delivers what is queued (at most 5 s) and closes every
 * connection. */
int stk_publisher_destroy(stk_publisher pub);

/* ------------------------------------------------------------------------ */
/* Subscribing                                                              */
/* ------------------------------------------------------------------------ */

typedef struct stk_subscriber_s *stk_subscriber;

/* Called for every received sequence. seq is owned by the library and valid
 * only during the call: read it, stk_sequence_clone it, but never destroy
 * or change it. Runs on a Go-created thread (see "Threads and callbacks"). */
typedef void (*stk_sequence_cb)(void *user, const stk_sequence *seq);

/* stk_subscriber_create subscribes to name with the name server (group:
 * the env's) and connects to every TCP address registered under it, now
 * and later (addresses of other protocols are logged and skipped);
 * connections reconnect by themselves. It returns at once: the callback
 * starts when data arrives. user is passed to cb. */
int stk_subscriber_create(stk_env env, const char *name, stk_sequence_cb cb,
                          void *user, stk_subscriber *out);

/* stk_subscriber_connect is the same without the name service: it connects
 * to one publisher at address ("[tcp:]ip:port"). env may be NULL. */
int stk_subscriber_connect(stk_env env, const char *address,
                           stk_sequence_cb cb, void *user,
                           stk_subscriber *out);

/* stk_subscriber_stats fills *stats with the sum of the subscriber's
 * connections' counters. */
int stk_subscriber_stats(stk_subscriber sub, stk_flow_stats *stats);

/* stk_subscriber_destroy stops the subscription and closes the
 * connections. When it returns no callback of sub runs any more (except the
 * caller, when called from sub's own callback: then the connections close
 * just after that callback returns). */
int stk_subscriber_destroy(stk_subscriber sub);

/* ------------------------------------------------------------------------ */
/* Names                                                                    */
/* ------------------------------------------------------------------------ */

/* Fault-tolerance state of a registration. */
enum {
    STK_FT_UNSET   = 0, /* no state sent (what C sends for "backup") */
    STK_FT_STANDBY = 1,
    STK_FT_ACTIVE  = 2
};

/* One registered address. protocol: "tcp", "udp", "rawudp", "multicast" or
 * "" (NULL in input: ""); ip: IPv4 dotted quad. */
typedef struct stk_endpoint {
    const char *protocol;
    const char *ip;
    uint16_t port;
} stk_endpoint;

/* What a name stands for. Input of stk_name_register (everything copied);
 * output of lookups and name subscriptions (everything owned by the library
 * and valid only during the callback). */
typedef struct stk_name_info {
    const char *name;            /* at most 95 bytes */
    const char *group;           /* NULL or "": the env's group (input);
                                    "" for the default group (output) */
    const stk_endpoint *addresses;
    size_t naddresses;           /* at most 5 */
    int linger_s;                /* seconds kept after the registrant's
                                    connection closes */
    int ft_state;                /* STK_FT_... */
    const stk_element *meta;     /* application meta-data elements, in order */
    size_t nmeta;
} stk_name_info;

/* stk_name_register registers info with the env's name server and waits up
 * to timeout_ms (< 0: 5000; 0: do not wait) for the confirmation:
 * STK_ETIMEDOUT if none came. Either way the env keeps the registration and
 * sends it again after every reconnect, until stk_name_unregister or
 * stk_env_destroy. Registering the same name and group again replaces it. */
int stk_name_register(stk_env env, const stk_name_info *info, int timeout_ms);

/* stk_name_unregister stops re-sending the registration of name in group
 * (NULL: the env's). STK has no unregister message: the server keeps the
 * name until the env's connection closes and the linger ends. */
int stk_name_unregister(stk_env env, const char *name, const char *group);

typedef struct stk_lookup_s *stk_lookup;
typedef struct stk_name_subscription_s *stk_name_subscription;

/* Called once per answer (one per registration of the name). */
typedef void (*stk_name_cb)(void *user, const stk_name_info *info);

/* Called exactly once when a lookup ends, after its last answer, with the
 * number of answers and how it ended: STK_OK: the server said there are no
 * more answers (complete); STK_ETIMEDOUT: the expiration passed (the only
 * end a C name server gives). Not called once stk_lookup_destroy (or
 * stk_env_destroy, which destroys the lookup) has been called. */
typedef void (*stk_lookup_done_cb)(void *user, int answers, int status);

/* stk_name_lookup asks the name server for name in group (NULL: the
 * env's), waiting at most expiration_ms for answers (<= 0: the env's
 * lookup_expiration_ms). It returns at once; on_answer (may be NULL) runs
 * for each answer and on_done (may be NULL) at the end. The lookup handle
 * must be destroyed with stk_lookup_destroy, before or after the end, from
 * any thread or from its own callbacks. */
int stk_name_lookup(stk_env env, const char *name, const char *group,
                    int expiration_ms, stk_name_cb on_answer,
                    stk_lookup_done_cb on_done, void *user, stk_lookup *out);

/* stk_lookup_destroy cancels the lookup if it is still running (on_done is
 * then not called) and frees the handle. */
int stk_lookup_destroy(stk_lookup lookup);

/* stk_name_subscribe asks for every registration of name in group (NULL:
 * the env's): cb runs for those that exist now and for each later one,
 * across reconnects, until stk_name_subscription_destroy. */
int stk_name_subscribe(stk_env env, const char *name, const char *group,
                       stk_name_cb cb, void *user,
                       stk_name_subscription *out);

/* stk_name_subscription_destroy stops the subscription's callbacks. */
int stk_name_subscription_destroy(stk_name_subscription sub);

/* ------------------------------------------------------------------------ */
/* Services (smartbeat)                                                     */
/* ------------------------------------------------------------------------ */

/* A service reports its state, checkpoint and liveness (a smartbeat every
 * period) to the monitor, where stkd shows it (web UI, GET
 * /api/v1/services). */
typedef struct stk_service_s *stk_service;

/* Service states. 1..5 are STK's; 6..255 belong to the application, which
 * may name them (stk_service_set_state_name). */
enum {
    STK_STATE_STARTING  = 1, /* the state of a new service */
    STK_STATE_RUNNING   = 2,
    STK_STATE_STOPPING  = 3,
    STK_STATE_STOPPED   = 4, /* sent by stk_service_destroy */
    STK_STATE_TIMED_OUT = 5
};

/* Service types (stk_service_options.type); others are the application's. */
enum {
    STK_SERVICE_IO   = 1,
    STK_SERVICE_DATA = 2, /* the default */
    STK_SERVICE_MGMT = 3,
    STK_SERVICE_NET  = 4
};

/* stk_service_options configure a service; zero fields (or a NULL pointer)
 * take the defaults. */
typedef struct stk_service_options {
    uint64_t id;             /* 0: a random 31-bit id */
    uint16_t type;           /* 0: STK_SERVICE_DATA */
    int activity_timeout_ms; /* how long the monitor waits for a smartbeat
                                before declaring the service failed; 0: 1200;
                                at least the env's smartbeat period */
    const char *monitor;     /* NULL: the env's monitor; otherwise as
                                stk_options.monitor */
} stk_service_options;

/* stk_service_create creates a service in state STK_STATE_STARTING and
 * announces it to the monitor. A monitor that is down is not an error (the
 * service keeps trying and announces itself when it comes); a monitor
 * address that cannot be parsed or looked up is (STK_EADDR,
 * STK_ETIMEDOUT). */
int stk_service_create(stk_env env, const char *name,
                       const stk_service_options *opts, stk_service *out);

/* stk_service_set_state sets the state (1..255) and notifies the monitor. */
int stk_service_set_state(stk_service svc, int state);

/* stk_service_set_state_name names state (1..255) for this service, or
 * renames a default one; the name travels with the state. NULL or ""
 * removes the name. Call it before setting the state. */
int stk_service_set_state_name(stk_service svc, int state, const char *name);

/* stk_service_state returns the current state (1..255) or an error code. */
int stk_service_state(stk_service svc);

/* stk_service_set_checkpoint sets the checkpoint, a progress counter that
 * travels in every smartbeat. */
int stk_service_set_checkpoint(stk_service svc, uint64_t checkpoint);

/* stk_service_id writes the service id to *id. */
int stk_service_id(stk_service svc, uint64_t *id);

/* stk_service_destroy sends DESTROY with state STK_STATE_STOPPED, stops the
 * smartbeats and frees the service. */
int stk_service_destroy(stk_service svc);

#ifdef __cplusplus
}
#endif

#endif /* STK_H */
