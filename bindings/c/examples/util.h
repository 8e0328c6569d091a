/*
 * util.h - small helpers shared by the C examples: clocks, the rate line
 * the Go examples print, Go-style durations and quoting (so that the C and
 * Go examples print the same lines).
 */
#ifndef STK_EXAMPLES_UTIL_H
#define STK_EXAMPLES_UTIL_H

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stk.h"

/* now returns a monotonic clock in seconds. */
static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* sleep_ms sleeps ms milliseconds. */
static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* rate formats "N sequences, B bytes in S s: R sequences/s, M MB/s" as the
 * Go examples do (internal/cli.Rate). */
static inline void print_rate(const char *prefix, long long n, long long bytes,
                              double first, double last)
{
    double d = last - first;
    if (n < 2 || d <= 0) {
        printf("%s%lld sequences, %lld bytes\n", prefix, n, bytes);
        return;
    }
    printf("%s%lld sequences, %lld bytes in %.6f s: %.0f sequences/s, %.1f MB/s\n",
           prefix, n, bytes, d, n / d, bytes / d / 1e6);
}

/* go_seconds prints whole seconds as Go prints a time.Duration ("5m0s"). */
static inline void go_seconds(FILE *f, long s)
{
    if (s >= 3600)
        fprintf(f, "%ldh%ldm%lds", s / 3600, s % 3600 / 60, s % 60);
    else if (s >= 60)
        fprintf(f, "%ldm%lds", s / 60, s % 60);
    else
        fprintf(f, "%lds", s);
}

/* go_quote prints n bytes as a Go %q string (printable ASCII as is,
 * the rest escaped). */
static inline void go_quote(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (isprint(c))
            fputc(c, f);
        else
            fprintf(f, "\\x%02x", c);
    }
    fputc('"', f);
}

/* die prints "prog: message (error name)" and exits 1; what names the
 * failed call when the library left no message. */
static inline void die(const char *prog, const char *what, int rc)
{
    const char *msg = stk_last_error();
    fprintf(stderr, "%s: %s (%s)\n", prog, msg[0] ? msg : what, stk_strerror(rc));
    exit(1);
}

/* stop is set by SIGINT and SIGTERM. */
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static inline void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

#endif
