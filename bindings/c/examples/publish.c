/*
 * publish - registers a name and publishes sequences under it, like the Go
 * examples/publish over TCP: it listens on the -i address, registers it with
 * the name server, waits for -w subscribers, sends -s sequences of one
 * -l byte element and prints how fast.
 */
#include <getopt.h>
#include <stdint.h>
#include <unistd.h>

#include "util.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: publish [flags] <name>\n"
        "Registers <name> and publishes sequences to its subscribers (TCP).\n"
        "  -i addr   where to listen: [tcp:]ip[:port] (default tcp:127.0.0.1:29312; port 0 picks one)\n"
        "  -s n      number of sequences to send (default 100)\n"
        "  -a n      sequences per batch; -p pauses between batches (default 10)\n"
        "  -l n      element length in bytes, 0 sends empty sequences (default 10)\n"
        "  -p ms     milliseconds to pause between batches (default 0)\n"
        "  -w n      subscribers to wait for before sending (default 1)\n"
        "  -L s      seconds the name outlives this program (default 5)\n"
        "  -R addr   name server: [tcp|udp:]ip[:port] (default tcp:127.0.0.1:20002)\n"
        "  -v        log what happens\n"
        "  -h        this help\n");
}

/* payload fills the C publish example's element: repeated
 * 0x0123456789abcdef (little-endian), starting with "default data" and
 * ending with de ad, as the Go example does. */
static void payload(unsigned char *p, size_t n)
{
    static const unsigned char pattern[8] = {0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01};
    for (size_t i = 0; i < n; i++)
        p[i] = pattern[i % 8];
    size_t text = n >= 2 ? n - 2 : 0;
    if (text > 12)
        text = 12;
    memcpy(p, "default data", text);
    if (n >= 2) {
        p[n - 2] = 0xde;
        p[n - 1] = 0xad;
    }
}

/* parse_int parses a non-negative int flag or exits. */
static long parse_int(const char *flag, const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0) {
        fprintf(stderr, "publish: -%s %s: want a number >= 0\n", flag, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *iface = "tcp:127.0.0.1:29312", *ns = NULL;
    long count = 100, batch = 10, length = 10, pause_ms = 0, subs = 1, linger = 5;
    int verbose = 0, c;
    while ((c = getopt(argc, argv, "i:s:a:l:p:w:L:R:vh")) != -1) {
        switch (c) {
        case 'i': iface = optarg; break;
        case 's': count = parse_int("s", optarg); break;
        case 'a': batch = parse_int("a", optarg); break;
        case 'l': length = parse_int("l", optarg); break;
        case 'p': pause_ms = parse_int("p", optarg); break;
        case 'w': subs = parse_int("w", optarg); break;
        case 'L': linger = parse_int("L", optarg); break;
        case 'R': ns = optarg; break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || batch < 1) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[optind];
    setvbuf(stdout, NULL, _IOLBF, 0);
    catch_signals();

    stk_options opts = {0};
    opts.name_server = ns;
    opts.log_level = verbose ? STK_LOG_DEBUG : STK_LOG_DEFAULT;
    stk_env env;
    int rc = stk_env_create(&opts, &env);
    if (rc != STK_OK)
        die("publish", "stk_env_create", rc);

    stk_publisher pub;
    if ((rc = stk_publisher_create(env, name, iface, (int)linger, &pub)) != STK_OK)
        die("publish", "stk_publisher_create", rc);
    char addr[64];
    stk_publisher_address(pub, addr, sizeof addr);
    printf("Publishing to '%s' on %s\n", name, addr);

    if (subs > 0) {
        printf("Waiting for %ld subscriber(s)\n", subs);
        while (!stop && stk_publisher_subscribers(pub) < subs)
            sleep_ms(5);
        if (stop) {
            printf("publish: interrupted before any subscriber came\n");
            stk_publisher_destroy(pub);
            stk_env_destroy(env);
            return 1;
        }
    }

    stk_sequence *seq;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    uint64_t id = ((uint64_t)rand() << 16 ^ (uint64_t)rand()) & 0x7fffffff;
    if ((rc = stk_sequence_create(id, "publish sequence", STK_SEQ_DATA, &seq)) != STK_OK)
        die("publish", "stk_sequence_create", rc);
    if (length > 0) {
        unsigned char *p = malloc((size_t)length);
        if (p == NULL) {
            fprintf(stderr, "publish: out of memory\n");
            return 1;
        }
        payload(p, (size_t)length);
        rc = stk_sequence_add(seq, STK_UT_EXAMPLE_DATA, p, (size_t)length);
        free(p); /* the sequence holds a copy */
        if (rc != STK_OK)
            die("publish", "stk_sequence_add", rc);
    }

    printf("Sending %ld sequences\n", count);
    double start = now();
    long sent = 0;
    while (sent < count && !stop) {
        for (long i = 0; i < batch && sent < count; i++) {
            if ((rc = stk_publisher_send(pub, seq)) != STK_OK)
                die("publish", "send", rc);
            sent++;
        }
        if (pause_ms > 0)
            sleep_ms(pause_ms);
    }
    double queued = now();
    stk_flow_stats st;
    stk_publisher_stats(pub, &st);
    stk_publisher_destroy(pub); /* delivers what is queued */
    double end = now();
    print_rate("Sent ", sent, (long long)sent * length, start, end);
    printf("(queueing took %.6f s, delivering the rest %.6f s; %d subscriber(s) at the end, %llu dropped)\n",
           queued - start, end - queued, st.connections, (unsigned long long)st.dropped);
    stk_sequence_destroy(seq);
    stk_env_destroy(env);
    return 0;
}
