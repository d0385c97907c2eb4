/* The network handle's internals, shared by net.c, plan.c and net_detect.c. */
#ifndef MDFI_CORE_NET_H
#define MDFI_CORE_NET_H

#include "base/cfg.h"
#include "base/error.h"
#include "base/threads.h"
#include "detect/detect.h"
#include "io/qweights.h"
#include "layers/layer.h"

struct mdfi_net {
    mdfi_errbuf err;
    char *warnings;
    size_t warn_len, warn_cap;
    mdfi_cfg cfg;
    int c, h, w;                  /* input shape */
    mdfi_layer *layers;
    int n;
    char *weights_path;
    mdfi_qweights *qw;            /* quantized weights (fixed-point cfgs), instead of a path */
    /* options */
    int threads, keep_outputs, isa_forced;
    mdfi_isa isa;
    /* prepared */
    int prepared, ran;
    mdfi_pool *pool;
    float *arena;
    size_t arena_floats, weight_bytes;
    float **out;                  /* [n] output buffer of each layer */
    int *readable;                /* [n] output still valid after forward */
    void **scratch;               /* [threads] */
    const float *input;           /* the last forward's input */
    int profile;                  /* time every layer in forward */
    double *layer_ms;             /* [n] the last profiled forward's times */
    /* detection workspace */
    int max_boxes, classes;
    mdfi_box *boxes, *box_scratch;
    float *probs;
    mdfi_detection *dets;
    int cap_dets;
};

/* Plans the activation arena by liveness and sets net->out. */
mdfi_status mdfi_net_plan(mdfi_net *net);
/* Sizes the detection workspace from the [yolo] layers. */
mdfi_status mdfi_net_prepare_detect(mdfi_net *net);
void mdfi_net_free_detect(mdfi_net *net);
/* Error helper: formats into net->err and returns st. */
mdfi_status mdfi_net_fail(mdfi_net *net, mdfi_status st, const char *fmt, ...) MDFI_PRINTF(3, 4);

#endif
