/*
 * subscribe - subscribes to a name and receives what its publishers send,
 * like the Go examples/subscribe over TCP: it prints each sequence unless
 * -q, and when it stops (Ctrl-C, or after -c sequences) it prints its one
 * summary line: "Received: N sequences, B bytes in T s: R sequences/s,
 * M MB/s", from the first sequence to the last.
 *
 * The callback runs on threads of the library, possibly several at once
 * (one per publisher), so the counters are atomic.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>

#include "util.h"

static int quiet;
static long long limit;
static atomic_llong count, bytes;
static atomic_llong last_n, last_bytes;
static _Atomic double first_t, last_t;
static atomic_int done;
static pthread_mutex_t print_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *type_name(uint16_t t)
{
    static const char *names[] = {"invalid", "data", "kvpair", "mgmt", "request", "query", "subscribe"};
    return t < sizeof names / sizeof names[0] ? names[t] : NULL;
}

/* on_sequence counts a received sequence; seq is only valid during the
 * call. */
static void on_sequence(void *user, const stk_sequence *seq)
{
    (void)user;
    size_t n_el = 0, size = 0;
    const stk_element *el = stk_sequence_elements(seq, &n_el);
    for (size_t i = 0; i < n_el; i++)
        size += el[i].len;
    long long n = atomic_fetch_add(&count, 1) + 1;
    long long b = atomic_fetch_add(&bytes, (long long)size) + (long long)size;
    if (n == 1 || n % 256 == 0 || n == limit) {
        /* not every sequence: reading the clock costs */
        double t = now();
        if (n == 1)
            first_t = t;
        last_t = t;
        last_n = n;
        last_bytes = b;
    }
    if (!quiet) {
        pthread_mutex_lock(&print_mu);
        const char *name = stk_sequence_name(seq);
        const char *tn = type_name(stk_sequence_type(seq));
        printf("Received sequence %#" PRIx64 " ", stk_sequence_id(seq));
        go_quote(stdout, name, strlen(name));
        if (tn)
            printf(" type %s", tn);
        else
            printf(" type %u", stk_sequence_type(seq));
        printf(", %zu element(s), %zu bytes\n", n_el, size);
        pthread_mutex_unlock(&print_mu);
    }
    if (n == limit)
        done = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: subscribe [flags] <name>\n"
        "Receives the sequences published under <name> (TCP).\n"
        "  -c n      stop after this many sequences (default 0: run until Ctrl-C)\n"
        "  -q        do not print each sequence\n"
        "  -G group  name group to look in\n"
        "  -R addr   name server: [tcp|udp:]ip[:port] (default tcp:127.0.0.1:20002)\n"
        "  -v        log what happens\n"
        "  -h        this help\n");
}

int main(int argc, char **argv)
{
    const char *ns = NULL, *group = NULL;
    int verbose = 0, c;
    while ((c = getopt(argc, argv, "c:qG:R:vh")) != -1) {
        switch (c) {
        case 'c': {
            char *end;
            limit = strtoll(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || limit < 0) {
                fprintf(stderr, "subscribe: -c %s: want a number >= 0\n", optarg);
                return 2;
            }
            break;
        }
        case 'q': quiet = 1; break;
        case 'G': group = optarg; break;
        case 'R': ns = optarg; break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[optind];
    setvbuf(stdout, NULL, _IOLBF, 0);
    catch_signals();

    stk_options opts = {0};
    opts.name_server = ns;
    opts.group = group;
    opts.log_level = verbose ? STK_LOG_DEBUG : STK_LOG_DEFAULT;
    stk_env env;
    int rc = stk_env_create(&opts, &env);
    if (rc != STK_OK)
        die("subscribe", "stk_env_create", rc);

    printf("Subscribing to '%s'\n", name);
    stk_subscriber sub;
    if ((rc = stk_subscriber_create(env, name, on_sequence, NULL, &sub)) != STK_OK)
        die("subscribe", "stk_subscriber_create", rc);
    if (stk_env_wait_name_server(env, 3000) != STK_OK && !stop)
        fprintf(stderr, "subscribe: no name server yet (is stkd running? point -R at it); still trying\n");
    while (!stop && !done)
        sleep_ms(5);
    stk_subscriber_destroy(sub); /* no callback runs after this */
    stk_env_destroy(env);
    /* As the Go one: exact counts, and the rate over the sequences timed
     * (all but the last few of an interrupted run). */
    if (last_n == count) {
        print_rate("Received: ", count, bytes, first_t, last_t);
    } else {
        printf("Received: %lld sequences, %lld bytes; the first ", (long long)count, (long long)bytes);
        print_rate("", last_n, last_bytes, first_t, last_t);
    }
    return 0;
}
