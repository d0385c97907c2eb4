/* mdfi detect / mdfi classify. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"

static const char *label(char **names, int n_names, int id, char *buf, size_t size)
{
    if (id < n_names)
        return names[id];
    snprintf(buf, size, "class_%d", id);
    return buf;
}

void cli_print_detections(const mdfi_detection *d, int n, char **names, int n_names, int json)
{
    char buf[32];
    if (!json) {
        for (int i = 0; i < n; ++i)
            printf("%s: %.0f%%\n", label(names, n_names, d[i].class_id, buf, sizeof buf),
                   d[i].prob * 100);
        return;
    }
    printf("[");
    for (int i = 0; i < n; ++i) {
        printf("%s{\"class_id\": %d, \"label\": ", i ? ", " : "", d[i].class_id);
        cli_json_string(stdout, label(names, n_names, d[i].class_id, buf, sizeof buf));
        printf(", \"prob\": %.9g, \"box\": [%.9g, %.9g, %.9g, %.9g], "
               "\"bbox\": [%d, %d, %d, %d]}", d[i].prob, d[i].x, d[i].y, d[i].w, d[i].h,
               d[i].left, d[i].top, d[i].right, d[i].bottom);
    }
    printf("]");
}

static void print_detections(const char *path, const mdfi_image *img, const mdfi_detection *d,
                             int n, char **names, int n_names, int json, double ms)
{
    if (!json) {
        printf("%s: Predicted in %.1f milliseconds.\n", path, ms);
    } else {
        printf("{\"image\": ");
        cli_json_string(stdout, path);
        printf(", \"width\": %d, \"height\": %d, \"detections\": ", img->w, img->h);
    }
    cli_print_detections(d, n, names, n_names, json);
    if (json)
        printf("}\n");
}

/* Shared start of both commands: args, net, names, letterboxed input, forward. */
typedef struct {
    cli_args a;
    mdfi_net *net;
    mdfi_image img;
    float *input;
    char **names;
    int n_names;
    double ms;
} run;

/* IMAGE "-" (stdin), a FIFO or a character device, or --stream: frames. */
static int is_stream(const cli_args *a)
{
    struct stat st;
    const char *p = a->pos[2];
    return a->stream || !strcmp(p, "-") ||
           (stat(p, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)));
}

/* 0: the forward ran; STREAM: detect on a stream, the net loaded; else the
 * exit status. */
#define STREAM (-1)
static int start(int argc, char **argv, const char *cmd, run *r)
{
    if (cli_parse(argc, argv, &r->a))
        return 2;
    if (r->a.n_pos != 3) {
        fprintf(stderr, "usage: mdfi %s CFG WEIGHTS IMAGE [options]\n", cmd);
        return 2;
    }
    const int detect = cmd[0] == 'd';
    if (detect)
        r->n_names = cli_detect_names(&r->a, r->a.pos[0], &r->names);
    else if (r->a.names)
        r->n_names = cli_read_names(r->a.names, &r->names);
    if (r->n_names < 0)
        return 1;
    if (!(r->net = cli_open_net(r->a.pos[0], r->a.pos[1], &r->a)))
        return 1;
    if (detect && is_stream(&r->a))
        return STREAM;
    if (!(r->input = cli_load_input(r->net, r->a.pos[2], &r->img)))
        return 1;
    double t0 = cli_now_ms();
    if (mdfi_net_forward(r->net, r->input, mdfi_net_input_size(r->net)) != MDFI_OK) {
        fprintf(stderr, "mdfi: error: %s\n", mdfi_net_last_error(r->net));
        return 1;
    }
    r->ms = cli_now_ms() - t0;
    return 0;
}

static int finish(run *r, int rc)
{
    free(r->input);
    if (r->img.data)
        mdfi_image_free(&r->img);
    mdfi_net_free(r->net);
    cli_free_names(r->names, r->n_names);
    return rc;
}

int cmd_detect(int argc, char **argv)
{
    run r = {0};
    int rc = start(argc, argv, "detect", &r);
    if (rc == STREAM)
        return finish(&r, cli_detect_stream(r.net, &r.a, r.names, r.n_names));
    if (rc)
        return finish(&r, rc);
    const mdfi_detection *d;
    int n;
    if (mdfi_net_detect(r.net, r.img.w, r.img.h, r.a.thresh, r.a.nms, &d, &n) != MDFI_OK) {
        fprintf(stderr, "mdfi: error: %s\n", mdfi_net_last_error(r.net));
        return finish(&r, 1);
    }
    print_detections(r.a.pos[2], &r.img, d, n, r.names, r.n_names, r.a.json, r.ms);
    return finish(&r, 0);
}

int cmd_classify(int argc, char **argv)
{
    run r = {0};
    int rc = start(argc, argv, "classify", &r);
    if (rc)
        return finish(&r, rc);
    const float *out;
    size_t n;
    mdfi_net_output(r.net, &out, &n);
    int top = r.a.top < (int)n ? r.a.top : (int)n;
    int *idx = malloc((size_t)top * sizeof *idx);
    if (!idx)
        return finish(&r, 1);
    /* top-k by repeated selection: k is small */
    for (int k = 0; k < top; ++k) {
        int best = -1;
        for (size_t i = 0; i < n; ++i) {
            int taken = 0;
            for (int j = 0; j < k; ++j)
                taken |= idx[j] == (int)i;
            if (!taken && (best < 0 || out[i] > out[best]))
                best = (int)i;
        }
        idx[k] = best;
    }
    char buf[32];
    if (r.a.json) {
        printf("{\"image\": ");
        cli_json_string(stdout, r.a.pos[2]);
        printf(", \"width\": %d, \"height\": %d, \"top\": [", r.img.w, r.img.h);
    } else {
        printf("%s: Predicted in %.1f milliseconds.\n", r.a.pos[2], r.ms);
    }
    for (int k = 0; k < top; ++k) {
        const char *name = label(r.names, r.n_names, idx[k], buf, sizeof buf);
        if (r.a.json) {
            printf("%s{\"class_id\": %d, \"label\": ", k ? ", " : "", idx[k]);
            cli_json_string(stdout, name);
            printf(", \"prob\": %.9g}", out[idx[k]]);
        } else {
            printf("%5.2f%%: %s\n", out[idx[k]] * 100, name);
        }
    }
    mdfi_exit_result ex;
    const int exits = mdfi_net_num_exits(r.net) > 0 &&
                      mdfi_net_exit_result(r.net, &ex) == MDFI_OK;
    if (r.a.json && exits)
        printf("], \"exit\": %d, \"exit_layer\": %d, \"entropy\": %.6g, \"macs\": %.0f}\n",
               ex.exit, ex.layer, (double)ex.entropy, ex.macs);
    else if (r.a.json)
        printf("]}\n");
    else if (exits && ex.exit >= 0)
        printf("exit %d (layer %d, policy %s): entropy %.4f, %.3f M MACs\n", ex.exit, ex.layer,
               mdfi_net_exit_policy(r.net), (double)ex.entropy, ex.macs / 1e6);
    else if (exits)
        printf("main path end (policy %s): %.3f M MACs\n", mdfi_net_exit_policy(r.net),
               ex.macs / 1e6);
    free(idx);
    return finish(&r, 0);
}

/* Darknet's command form, so that its users' scripts run unchanged:
 *   detector test DATA CFG WEIGHTS IMAGE [-thresh T]   (and any mdfi option)
 * is mdfi detect CFG WEIGHTS IMAGE --data DATA [--thresh T]. */
int cmd_detector(int argc, char **argv)
{
    if (argc < 5 || strcmp(argv[0], "test")) {
        fprintf(stderr, "usage: mdfi detector test DATA CFG WEIGHTS IMAGE [-thresh T] (Darknet's "
                "form of mdfi detect CFG WEIGHTS IMAGE --data DATA)\n");
        return 2;
    }
    /* in place: "--data" DATA CFG WEIGHTS IMAGE ... keeps the positionals' order */
    argv[0] = (char *)"--data";
    for (int i = 5; i < argc; ++i)
        if (!strcmp(argv[i], "-thresh"))
            argv[i] = (char *)"--thresh";
    return cmd_detect(argc, argv);
}
