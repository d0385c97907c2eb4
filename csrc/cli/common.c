#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/cli.h"

static int number(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || end == s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "mdfi: %s needs a number in [%g, %g], got '%s'\n", opt, lo, hi,
                s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse(int argc, char **argv, cli_args *a)
{
    memset(a, 0, sizeof *a);
    a->thresh = .5f;
    a->nms = .45f;
    a->threads = 1;
    a->runs = 10;
    a->top = 5;
    a->every = 1;
    for (int i = 0; i < argc; ++i) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
        if (!strcmp(o, "--json")) {
            a->json = 1;
        } else if (!strcmp(o, "--thresh")) {
            if (number(o, v, 0, 1, &d)) return -1;
            a->thresh = (float)d, ++i;
        } else if (!strcmp(o, "--nms")) {
            if (number(o, v, 0, 1, &d)) return -1;
            a->nms = (float)d, ++i;
        } else if (!strcmp(o, "--threads")) {
            if (number(o, v, 1, 256, &d)) return -1;
            a->threads = (int)d, ++i;
        } else if (!strcmp(o, "--runs")) {
            if (number(o, v, 1, 100000, &d)) return -1;
            a->runs = (int)d, ++i;
        } else if (!strcmp(o, "--every")) {
            if (number(o, v, 1, 1e9, &d)) return -1;
            a->every = (int)d, ++i;
        } else if (!strcmp(o, "--max-frames")) {
            if (number(o, v, 1, 2e9, &d)) return -1;
            a->max_frames = (int)d, ++i;
        } else if (!strcmp(o, "--stream")) {
            a->stream = 1;
        } else if (!strcmp(o, "--bytes")) {
            a->bytes = 1;
        } else if (!strcmp(o, "--top")) {
            if (number(o, v, 1, 100000, &d)) return -1;
            a->top = (int)d, ++i;
        } else if (!strcmp(o, "--kernel") || !strcmp(o, "--names") || !strcmp(o, "--policy") ||
                   !strcmp(o, "--data")) {
            if (!v) {
                fprintf(stderr, "mdfi: %s needs a value\n", o);
                return -1;
            }
            *(!strcmp(o, "--kernel") ? &a->kernel : !strcmp(o, "--names") ? &a->names
              : !strcmp(o, "--data") ? &a->data : &a->policy) = v;
            ++i;
        } else if (o[0] == '-' && o[1] == '-') {
            fprintf(stderr, "mdfi: unknown option %s\n", o);
            return -1;
        } else if (a->n_pos < 4) {
            a->pos[a->n_pos++] = o;
        } else {
            fprintf(stderr, "mdfi: too many arguments at '%s'\n", o);
            return -1;
        }
    }
    return 0;
}

/* The environment variables of the program (the library reads none):
 * MDFI_KERNEL, MDFI_BINARY_KERNEL, MDFI_BINARY_FUSE and MDFI_WINOGRAD (0, 1, 2, 3 or auto).
 * Returns NULL, or a message for a value that is not one of the choices. */
const char *cli_env_options(mdfi_options *opt)
{
    mdfi_options_default(opt);
    const char *k = getenv("MDFI_KERNEL"), *b = getenv("MDFI_BINARY_KERNEL");
    const char *f = getenv("MDFI_BINARY_FUSE"), *w = getenv("MDFI_WINOGRAD");
    opt->kernel = k && *k ? k : NULL;
    opt->binary_kernel = b && *b ? b : NULL;
    if (f && *f && strcmp(f, "auto")) {
        if (strcmp(f, "0") && strcmp(f, "1"))
            return "MDFI_BINARY_FUSE must be 0, 1 or auto";
        opt->binary_fuse = f[0] - '0';
    }
    if (w && *w && strcmp(w, "auto")) {
        if (strcmp(w, "0") && strcmp(w, "1") && strcmp(w, "2") && strcmp(w, "3"))
            return "MDFI_WINOGRAD must be 0, 1, 2, 3 or auto";
        opt->winograd = w[0] - '0';
    }
    return NULL;
}

mdfi_net *cli_open_net(const char *cfg, const char *weights, const cli_args *a)
{
    mdfi_net *net;
    if (mdfi_net_new(&net) != MDFI_OK) {
        fprintf(stderr, "mdfi: out of memory\n");
        return NULL;
    }
    mdfi_options opt;
    const char *bad = cli_env_options(&opt);
    if (bad) {
        fprintf(stderr, "mdfi: %s\n", bad);
        mdfi_net_free(net);
        return NULL;
    }
    opt.threads = a->threads;
    if (a->kernel)
        opt.kernel = a->kernel;
    mdfi_status st = mdfi_net_load_cfg(net, cfg);
    if (st == MDFI_OK && weights)
        st = mdfi_net_load_weights(net, weights);
    if (st == MDFI_OK)
        st = mdfi_net_set_options(net, &opt);
    if (st == MDFI_OK)
        st = mdfi_net_prepare(net);
    if (st == MDFI_OK && a->policy)
        st = mdfi_net_set_exit_policy(net, a->policy);
    if (st != MDFI_OK) {
        fprintf(stderr, "mdfi: error: %s\n", mdfi_net_last_error(net));
        mdfi_net_free(net);
        return NULL;
    }
    const char *w = mdfi_net_warnings(net);
    if (*w)
        fprintf(stderr, "%s", w);
    return net;
}

float *cli_load_input(mdfi_net *net, const char *path, mdfi_image *img)
{
    mdfi_errbuf err;
    mdfi_shape s;
    mdfi_net_input_shape(net, &s);
    if (mdfi_image_read(path, img, &err) != MDFI_OK) {
        fprintf(stderr, "mdfi: error: %s\n", err.msg);
        return NULL;
    }
    if (s.c != 3 && s.c != 1) {
        fprintf(stderr, "mdfi: error: the network takes %d channels; images give 3 (or 1: "
                "grey)\n", s.c);
        mdfi_image_free(img);
        return NULL;
    }
    const size_t plane = (size_t)s.w * (size_t)s.h;
    float *in = malloc(3 * plane * sizeof *in);
    if (!in || mdfi_letterbox(img, s.w, s.h, in, &err) != MDFI_OK) {
        fprintf(stderr, "mdfi: error: %s\n", in ? err.msg : "out of memory");
        free(in);
        mdfi_image_free(img);
        return NULL;
    }
    /* a grey network reads the mean of the letterboxed channels (as mdfi.classify) */
    for (size_t i = 0; s.c == 1 && i < plane; ++i)
        in[i] = (in[i] + in[plane + i] + in[2 * plane + i]) / 3.f;
    return in;
}

int cli_read_names(const char *path, char ***names)
{
    *names = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "mdfi: error: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    int n = 0, cap = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (n == cap) {
            cap = cap ? 2 * cap : 128;
            char **nn = realloc(*names, (size_t)cap * sizeof *nn);
            if (!nn)
                break;
            *names = nn;
        }
        size_t len = strlen(line) + 1;
        if (!((*names)[n] = malloc(len)))
            break;
        memcpy((*names)[n++], line, len);
    }
    fclose(f);
    return n;
}

void cli_free_names(char **names, int n)
{
    for (int i = 0; i < n; ++i)
        free(names[i]);
    free(names);
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; ++s) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

double cli_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* VmHWM rather than ru_maxrss: Linux carries ru_maxrss across exec, so a
 * program started from a big process (Python with OpenCV) would report the
 * parent's peak. */
long cli_peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    if (kb < 0) {
        struct rusage ru;
        kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
    }
    return kb;
}
