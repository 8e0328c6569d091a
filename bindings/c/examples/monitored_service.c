/*
 * monitored_service - a service that reports to the monitor, like the Go
 * examples/monitored_service: it announces itself, optionally spends -W
 * iterations in application state 6 named "warming up", goes to
 * "running", advances its checkpoint once per iteration, and on the last
 * iteration (or Ctrl-C) goes to "stopping" and says goodbye. Watch it in
 * stkd's status UI.
 */
#include <getopt.h>
#include <inttypes.h>

#include "util.h"

/* An application state (6..255) and its name. */
#define STATE_WARMING_UP 6

static void usage(FILE *f)
{
    fprintf(f,
        "usage: monitored_service [flags]\n"
        "Runs a service that reports its state and checkpoint to the monitor.\n"
        "  -m addr   monitor: lookup:name or [tcp|udp|multicast:]ip[:port] (default tcp:127.0.0.1:20001)\n"
        "  -t n      iterations before exiting; the checkpoint is the iteration number (default 1000000)\n"
        "  -S name   service name (default \"basic monitored service\")\n"
        "  -i ms     time between iterations (default 1000)\n"
        "  -W n      first spend n iterations in state %d, \"warming up\" (default 0)\n"
        "  -b ms     smartbeat period (default 500)\n"
        "  -a ms     how long the monitor waits for a smartbeat before declaring the service failed; at least -b (default 1200)\n"
        "  -R addr   name server for -m lookup:name, [tcp|udp:]ip[:port] (default tcp:127.0.0.1:20002)\n"
        "  -v        log what happens and print every checkpoint\n"
        "  -h        this help\n", STATE_WARMING_UP);
}

int main(int argc, char **argv)
{
    const char *monitor = "tcp:127.0.0.1:20001", *name = "basic monitored service", *ns = NULL;
    long long iterations = 1000000;
    long interval = 1000, warm = 0, beat = 500, activity = 1200;
    int verbose = 0, c;
    while ((c = getopt(argc, argv, "m:t:S:i:W:b:a:R:vh")) != -1) {
        switch (c) {
        case 'm': monitor = optarg; break;
        case 't': iterations = atoll(optarg); break;
        case 'S': name = optarg; break;
        case 'i': interval = atol(optarg); break;
        case 'W': warm = atol(optarg); break;
        case 'b': beat = atol(optarg); break;
        case 'a': activity = atol(optarg); break;
        case 'R': ns = optarg; break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || iterations < 0 || warm < 0 || interval <= 0 || beat <= 0 || activity < beat) {
        fprintf(stderr, "monitored_service: -t and -W must be >= 0, -i and -b > 0, and -a >= -b\n");
        usage(stderr);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    catch_signals();

    stk_options opts = {0};
    opts.name_server = ns;
    opts.monitor = monitor;
    opts.smartbeat_period_ms = (int)beat;
    opts.log_level = verbose ? STK_LOG_DEBUG : STK_LOG_DEFAULT;
    stk_env env;
    int rc = stk_env_create(&opts, &env);
    if (rc != STK_OK)
        die("monitored_service", "stk_env_create", rc);

    stk_service_options so = {0};
    so.activity_timeout_ms = (int)activity;
    stk_service svc;
    if ((rc = stk_service_create(env, name, &so, &svc)) != STK_OK) {
        fprintf(stderr, "monitored_service: %s (is stkd running? -m says where the monitor is)\n", stk_last_error());
        return 1;
    }
    uint64_t id;
    stk_service_id(svc, &id);
    printf("Service '%s' id %#" PRIx64 " reporting to %s\n", name, id, monitor);

    stk_service_set_state_name(svc, STATE_WARMING_UP, "warming up");
    if (warm > 0)
        stk_service_set_state(svc, STATE_WARMING_UP);
    else
        stk_service_set_state(svc, STK_STATE_RUNNING);
    unsigned long long cp = 0;
    for (long long i = 1; i <= iterations && !stop; i++) {
        /* sleep in small steps so that Ctrl-C is quick */
        for (long t = 0; t < interval && !stop; t += 10)
            sleep_ms(interval - t < 10 ? interval - t : 10);
        if (stop)
            break;
        cp = (unsigned long long)i;
        stk_service_set_checkpoint(svc, cp);
        if (verbose)
            printf("checkpoint %llu\n", cp);
        if (i == warm)
            stk_service_set_state(svc, STK_STATE_RUNNING);
    }
    stk_service_set_state(svc, STK_STATE_STOPPING);
    if ((rc = stk_service_destroy(svc)) != STK_OK)
        die("monitored_service", "stk_service_destroy", rc);
    stk_env_destroy(env);
    printf("Service '%s' stopped at checkpoint %llu\n", name, cp);
    return 0;
}
