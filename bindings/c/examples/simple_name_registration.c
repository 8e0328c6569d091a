/*
 * simple_name_registration - registers a name with addresses and optional
 * meta-data, group, fault-tolerance state and linger, like the Go
 * examples/simple_name_registration.
 */
#include <getopt.h>

#include "util.h"

#define MAX_META 64

static void usage(FILE *f)
{
    fprintf(f,
        "usage: simple_name_registration [flags] <name>\n"
        "Registers <name> with the name server.\n"
        "  -i addr   address to register, [protocol:]ip[:port] (default tcp:127.0.0.1:20003); repeat for several (at most 5)\n"
        "  -M id,val meta-data element (user type id, value sent as a C string); repeatable\n"
        "  -F state  fault-tolerance state: active (default), backup (sends none, like C) or standby\n"
        "  -G group  name group\n"
        "  -L s      seconds the name outlives this program's connection (default 300)\n"
        "  -w        stay registered until Ctrl-C (the name then lingers -L seconds)\n"
        "  -R addr   name server: [tcp|udp|tls:]ip[:port] (default tcp:127.0.0.1:20002); tls: trusts the CAs of\n"
        "            $STK_TLS_CA (else the system's) and shows $STK_TLS_CERT with key $STK_TLS_KEY, if set\n"
        "  -T file   name-service token file, one line NAME:SECRET, for a name server whose policy asks for one\n"
        "            (default: $STK_TOKEN)\n"
        "  -q        print nothing but errors\n"
        "  -h        this help\n");
}

/* parse_endpoint parses "[protocol:]ip[:port]" into e, pointing into buf
 * (a copy of s). */
static int parse_endpoint(const char *s, char *buf, size_t n, stk_endpoint *e)
{
    snprintf(buf, n, "%s", s);
    e->protocol = "tcp";
    e->port = 20003;
    char *ip = buf;
    static const char *protos[] = {"tcp", "udp", "rawudp", "multicast"};
    for (size_t i = 0; i < 4; i++) {
        size_t l = strlen(protos[i]);
        if (strncmp(buf, protos[i], l) == 0 && buf[l] == ':') {
            e->protocol = protos[i];
            ip = buf + l + 1;
        }
    }
    char *colon = strchr(ip, ':');
    if (colon != NULL) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end != '\0' || port < 0 || port > 65535)
            return -1;
        e->port = (uint16_t)port;
        *colon = '\0';
    }
    e->ip = *ip ? ip : "127.0.0.1";
    return 0;
}

int main(int argc, char **argv)
{
    const char *ns = NULL, *group = NULL, *ft = "active", *token_file = NULL;
    const char *ifaces[5];
    size_t nif = 0, nmeta = 0;
    stk_element meta[MAX_META];
    long linger = 300;
    int wait = 0, quiet = 0, c;
    while ((c = getopt(argc, argv, "i:M:F:G:L:wR:T:qh")) != -1) {
        switch (c) {
        case 'i':
            if (nif == 5) {
                fprintf(stderr, "simple_name_registration: at most 5 -i addresses\n");
                return 2;
            }
            ifaces[nif++] = optarg;
            break;
        case 'M': {
            char *comma = strchr(optarg, ','), *end;
            unsigned long long ut = strtoull(optarg, &end, 0);
            if (comma == NULL || end != comma || end == optarg || nmeta == MAX_META) {
                fprintf(stderr, "simple_name_registration: -M %s: want id,value with a numeric id, as in -M 100,hello\n", optarg);
                return 2;
            }
            meta[nmeta].user_type = ut;
            meta[nmeta].data = comma + 1;
            meta[nmeta].len = strlen(comma + 1) + 1; /* with the NUL, as C peers send strings */
            nmeta++;
            break;
        }
        case 'F': ft = optarg; break;
        case 'G': group = optarg; break;
        case 'L': linger = atol(optarg); break;
        case 'w': wait = 1; break;
        case 'R': ns = optarg; break;
        case 'T': token_file = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || linger < 0) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[optind];
    setvbuf(stdout, NULL, _IOLBF, 0);
    catch_signals();

    if (nif == 0)
        ifaces[nif++] = "tcp:127.0.0.1:20003";
    stk_endpoint eps[5];
    char bufs[5][128];
    for (size_t i = 0; i < nif; i++) {
        if (parse_endpoint(ifaces[i], bufs[i], sizeof bufs[i], &eps[i]) != 0) {
            fprintf(stderr, "simple_name_registration: -i %s: want [protocol:]ip[:port]\n", ifaces[i]);
            return 2;
        }
    }
    stk_name_info info = {0};
    info.name = name;
    info.group = group;
    info.addresses = eps;
    info.naddresses = nif;
    info.linger_s = (int)linger;
    info.meta = meta;
    info.nmeta = nmeta;
    if (strcmp(ft, "active") == 0)
        info.ft_state = STK_FT_ACTIVE;
    else if (strcmp(ft, "backup") == 0)
        info.ft_state = STK_FT_UNSET; /* the C client sends nothing for anything but active */
    else if (strcmp(ft, "standby") == 0)
        info.ft_state = STK_FT_STANDBY;
    else {
        fprintf(stderr, "simple_name_registration: -F %s: want active, backup or standby\n", ft);
        return 2;
    }

    stk_options opts = {0};
    opts.name_server = ns;
    opts.token_file = token_file;
    stk_env env;
    int rc = stk_env_create(&opts, &env);
    if (rc != STK_OK)
        die("simple_name_registration", "stk_env_create", rc);
    if (!quiet)
        printf("Registering info on name %s\n", name);
    if ((rc = stk_name_register(env, &info, 5000)) != STK_OK)
        die("simple_name_registration", "stk_name_register", rc);
    if (!quiet) {
        printf("Registered %s with the name server at %s (linger ", name, ns ? ns : "tcp:127.0.0.1:20002");
        go_seconds(stdout, linger);
        printf(")\n");
    }
    while (wait && !stop)
        sleep_ms(50);
    stk_env_destroy(env);
    return 0;
}
