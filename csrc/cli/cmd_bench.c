/* mdfi bench: forward time (median/min over runs) and peak memory. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_bench(int argc, char **argv)
{
    cli_args a;
    if (cli_parse(argc, argv, &a))
        return 2;
    if (a.n_pos < 1 || a.n_pos > 2) {
        fprintf(stderr, "usage: mdfi bench CFG [WEIGHTS] [--runs N] [--threads N] [--bytes]\n");
        return 2;
    }
    mdfi_net *net = cli_open_net(a.pos[0], a.n_pos > 1 ? a.pos[1] : NULL, &a);
    if (!net)
        return 1;
    size_t n = mdfi_net_input_size(net);
    /* --bytes: the input as 8-bit pixels, held as they are (no float copy) */
    unsigned char *px = a.bytes ? malloc(n) : NULL;
    float *in = a.bytes ? NULL : malloc(n * sizeof *in);
    double *t = malloc((size_t)a.runs * sizeof *t);
    mdfi_status st = MDFI_ERR_NOMEM;
    if ((px || in) && t) {
        for (size_t i = 0; i < n; ++i) {   /* a fixed, image-like input */
            unsigned v = (unsigned)((i * 2654435761u) % 256);
            if (px)
                px[i] = (unsigned char)v;
            else
                in[i] = (float)v / 255.f;
        }
        for (int r = -1; r < a.runs; ++r) {   /* r = -1: warm-up */
            double t0 = cli_now_ms();
            st = px ? mdfi_net_forward_bytes(net, px, n, -1) : mdfi_net_forward(net, in, n);
            if (st != MDFI_OK)
                break;
            if (r >= 0)
                t[r] = cli_now_ms() - t0;
        }
    }
    if (st != MDFI_OK) {
        fprintf(stderr, "mdfi: error: %s\n", st == MDFI_ERR_NOMEM ? "out of memory"
                                                                : mdfi_net_last_error(net));
        free(px);
        free(in);
        free(t);
        mdfi_net_free(net);
        return 1;
    }
    qsort(t, (size_t)a.runs, sizeof *t, cmp_double);
    double median = a.runs % 2 ? t[a.runs / 2] : (t[a.runs / 2 - 1] + t[a.runs / 2]) / 2;
    if (a.json) {
        printf("{\"cfg\": ");
        cli_json_string(stdout, a.pos[0]);
        printf(", \"runs\": %d, \"threads\": %d, \"kernel\": \"%s\", "
               "\"median_ms\": %.4f, \"min_ms\": %.4f, \"peak_rss_kb\": %ld, "
               "\"arena_bytes\": %zu, \"weight_bytes\": %zu}\n", a.runs,
               mdfi_net_threads(net), mdfi_net_kernel_name(net), median, t[0],
               cli_peak_rss_kb(), mdfi_net_arena_bytes(net), mdfi_net_weight_bytes(net));
    } else {
        printf("%s: %d runs, %d thread(s), kernel %s: median %.2f ms, min %.2f ms, peak RSS "
               "%.1f MB (arena %.1f MB, parameters %.1f MB)\n", a.pos[0], a.runs,
               mdfi_net_threads(net), mdfi_net_kernel_name(net), median, t[0],
               cli_peak_rss_kb() / 1024.0, mdfi_net_arena_bytes(net) / 1048576.0,
               mdfi_net_weight_bytes(net) / 1048576.0);
    }
    free(px);
    free(in);
    free(t);
    mdfi_net_free(net);
    return 0;
}
