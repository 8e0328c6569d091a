/*
 * simple_name_lookup - looks a name up, or with -X subscribes to it, and
 * prints every answer, like the Go examples/simple_name_lookup. The lookup
 * ends at the final callback: "complete" when the name server said it sent
 * every answer, "expired" when -e passed first.
 *
 * With -c, the answer callback destroys the lookup itself once it has
 * enough answers: callbacks may call back into the library.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>

#include "util.h"

static int quiet;
static long want; /* -c */
static atomic_long answers;
static atomic_int finished, done_answers, done_status;
/* The lookup handle, for the callback. An answer may come before
 * stk_name_lookup has returned the handle: the callback then leaves the
 * destroying to main. */
static _Atomic(stk_lookup) lookup;
static pthread_mutex_t print_mu = PTHREAD_MUTEX_INITIALIZER;

/* print_info prints an answer as the Go examples do (internal/cli). */
static void print_info(const stk_name_info *info)
{
    printf("Received info on name %s", info->name);
    if (info->group[0] != '\0')
        printf(" (group %s)", info->group);
    if (info->naddresses == 0)
        printf(", no address");
    for (size_t i = 0; i < info->naddresses; i++) {
        const stk_endpoint *e = &info->addresses[i];
        printf("%sIP %s Port %u Protocol %s", i ? "; " : ", ", e->ip, e->port, e->protocol);
    }
    static const char *ft[] = {"unset", "standby", "active"};
    printf(", FT State %s, linger ", info->ft_state >= 0 && info->ft_state <= 2 ? ft[info->ft_state] : "?");
    go_seconds(stdout, info->linger_s);
    printf("\n");
    if (info->nmeta > 0)
        printf("Name %s has %zu meta data elements\n", info->name, info->nmeta);
    for (size_t i = 0; i < info->nmeta; i++) {
        const stk_element *m = &info->meta[i];
        const char *s = m->data ? m->data : "";
        size_t n = m->data ? strnlen(s, m->len) : 0; /* a C string: up to the NUL */
        switch (m->user_type) {
        case 0x1000: printf("HTTP monitoring TCP Connection %.*s\n", (int)n, s); break;
        case 0x1001: printf("HTTP monitoring UDP Connection %.*s\n", (int)n, s); break;
        case 0x1002: printf("HTTP monitoring Multicast Connection %.*s\n", (int)n, s); break;
        default:
            printf("Meta data type %llu sz %zu ", (unsigned long long)m->user_type, m->len);
            go_quote(stdout, s, n);
            printf("\n");
        }
    }
}

static void on_answer(void *user, const stk_name_info *info)
{
    (void)user;
    if (!quiet) {
        pthread_mutex_lock(&print_mu);
        print_info(info);
        pthread_mutex_unlock(&print_mu);
    }
    long n = atomic_fetch_add(&answers, 1) + 1;
    if (want > 0 && n == want) {
        /* enough: end the lookup from its own callback (no more callbacks
         * after this, not even on_done) */
        stk_lookup l = atomic_load(&lookup);
        if (l != NULL)
            stk_lookup_destroy(l);
        int zero = 0;
        atomic_compare_exchange_strong(&finished, &zero, 2);
    }
}

static void on_done(void *user, int n, int status)
{
    (void)user;
    done_answers = n;
    done_status = status;
    int zero = 0;
    atomic_compare_exchange_strong(&finished, &zero, 1);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: simple_name_lookup [flags] <name>\n"
        "Looks <name> up with the name server and prints the answers.\n"
        "  -G group  name group to look in\n"
        "  -X        subscribe: print the current registrations and every later one until Ctrl-C\n"
        "  -c n      stop after this many answers (default 0: all of them)\n"
        "  -e ms     how long to wait for answers (default 1000; a Go stkd says when it has sent them all)\n"
        "  -R addr   name server: [tcp|udp:]ip[:port] (default tcp:127.0.0.1:20002)\n"
        "  -q        print only the summary\n"
        "  -h        this help\n");
}

int main(int argc, char **argv)
{
    const char *ns = NULL, *group = NULL;
    int subscribe = 0, c;
    long expiration = 1000;
    while ((c = getopt(argc, argv, "G:Xc:e:R:qh")) != -1) {
        switch (c) {
        case 'G': group = optarg; break;
        case 'X': subscribe = 1; break;
        case 'c': want = atol(optarg); break;
        case 'e': expiration = atol(optarg); break;
        case 'R': ns = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || want < 0 || expiration <= 0) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[optind];
    setvbuf(stdout, NULL, _IOLBF, 0);
    catch_signals();

    stk_options opts = {0};
    opts.name_server = ns;
    opts.group = group;
    stk_env env;
    int rc = stk_env_create(&opts, &env);
    if (rc != STK_OK)
        die("simple_name_lookup", "stk_env_create", rc);
    double start = now();

    if (subscribe) {
        printf("Subscribing to name %s\n", name);
        stk_name_subscription sub;
        if ((rc = stk_name_subscribe(env, name, NULL, on_answer, NULL, &sub)) != STK_OK)
            die("simple_name_lookup", "stk_name_subscribe", rc);
        while (!stop && !(want > 0 && answers >= want))
            sleep_ms(5);
        stk_name_subscription_destroy(sub);
        printf("Received %ld answer(s) for name %s\n", (long)answers, name);
        stk_env_destroy(env);
        return 0;
    }

    printf("Requesting info on name %s\n", name);
    stk_lookup l;
    if ((rc = stk_name_lookup(env, name, NULL, (int)expiration, on_answer, on_done, NULL, &l)) != STK_OK)
        die("simple_name_lookup", "stk_name_lookup", rc);
    atomic_store(&lookup, l);
    while (!stop && !finished)
        sleep_ms(1);
    double took = now() - start;
    if (finished == 2)
        printf("Lookup of '%s': stopped after %ld answer(s) in %.3fms\n", name, (long)answers, took * 1e3);
    else if (finished == 1)
        printf("Lookup of '%s' %s: %d answer(s) in %.3fms\n", name,
               done_status == STK_OK ? "complete" : "expired", (int)done_answers, took * 1e3);
    if (finished == 1 && done_status != STK_OK &&
        stk_env_wait_name_server(env, 0) != STK_OK)
        fprintf(stderr, "simple_name_lookup: not connected to a name server (is stkd running? point -R at it)\n");
    stk_lookup_destroy(l); /* STK_EHANDLE, harmless, if the callback did it */
    stk_env_destroy(env);
    return 0;
}
