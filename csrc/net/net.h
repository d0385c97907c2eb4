/* The network handle's internals, shared by the files of net/. */
#ifndef MDFI_CORE_NET_H
#define MDFI_CORE_NET_H

#include "base/cfg.h"
#include "base/error.h"
#include "base/threads.h"
#include "detect/detect.h"
#include "io/params.h"
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
    mdfi_params *params;          /* opened by load_weights, read by prepare, then closed */
    /* options (mdfi_options; the strings validated into kinds) */
    int threads, keep_outputs, isa_forced, binary_fuse, fuse_pool, winograd;
    mdfi_isa isa;
    int binary_kind;              /* mdfi_bkind, or -1: chosen for isa */
    unsigned char *marked;        /* [n] outputs the caller reads (mdfi_net_mark_output) */
    /* prepared */
    int prepared, ran;
    int done;                     /* layers [0, done) ran in the current forward */
    mdfi_pool *pool;
    float *arena;
    size_t arena_floats, weight_bytes;
    float **out;                  /* [n] output buffer of each layer */
    int *last;                    /* [n] the last step at which each output's buffer is
                                     live; n: to the end (readable after forward) */
    void **scratch;               /* [threads] */
    const float *input;           /* the last forward's input */
    const unsigned char *input_bytes;   /* or its 8-bit pixels (input NULL) */
    int profile;                  /* time every layer in forward */
    double *layer_ms;             /* [n] the last profiled forward's times */
    /* early exits (docs/early-exit.md; net/exits.c) */
    int n_exits;
    int *exits;                   /* [n_exits] the [exit] layers, in order */
    int *branch;                  /* [n] the [exit] whose branch holds layer i (the [exit]
                                     itself included); -1: the main path */
    int policy;                   /* mdfi_exit_policy_kind */
    int fired;                    /* this forward: the exit that fired (k), or -1 */
    double macs, flops, bops;     /* this forward: multiply-accumulates, float and binary
                                     operations spent (gated second planes included) */
    unsigned run_id;              /* counts forwards */
    unsigned *ran_in;             /* [n] the run_id of the forward that last ran layer i */
    /* detection workspace */
    int max_boxes, classes;
    float nms_beta;   /* < 0: Darknet's IoU NMS; else AlexeyAB's DIoU (detect/detect.h) */
    mdfi_box *boxes, *box_scratch;
    float *probs;
    mdfi_detection *dets;
    int cap_dets;
};

/* The passes (net/passes.c).  select: after each layer's parse, chooses its
 * numeric path and runs its variant's bind.  fuse: at prepare, decides the
 * conv->maxpool band fusion and the bit tensors between binary layers. */
mdfi_status mdfi_pass_select(mdfi_net *net, mdfi_cfg_section *s, int index);
mdfi_status mdfi_pass_fuse(mdfi_net *net);
/* Plans the activation arena by liveness and sets net->out. */
mdfi_status mdfi_net_plan(mdfi_net *net);
/* Sizes the detection workspace from the [yolo] layers. */
mdfi_status mdfi_net_prepare_detect(mdfi_net *net);
void mdfi_net_free_detect(mdfi_net *net);
/* Early exits (net/exits.c). */
typedef enum {
    MDFI_POLICY_NONE, MDFI_POLICY_ALL, MDFI_POLICY_BRANCHY, MDFI_POLICY_ENTROPY,
    MDFI_POLICY_EXIT
} mdfi_exit_policy_kind;
/* During build, after layer i's parse: its branch, and the wiring rules. */
mdfi_status mdfi_exits_track(mdfi_net *net, int i);
/* After build: every branch complete and ending in a classifier. */
mdfi_status mdfi_exits_check(mdfi_net *net);
/* The last layer of the branch of the [exit] at layer e (its classifier). */
int mdfi_exits_branch_last(const mdfi_net *net, int e);
/* The default input of layer i: the layer before it, or the branch point
 * after an [exit] or after a branch's last layer. */
int mdfi_exits_default_input(const mdfi_net *net, int i);
/* The layer holding the last forward's result: the fired exit's classifier,
 * else the last layer. */
int mdfi_exits_result_layer(const mdfi_net *net);
/* Layer i is the last of a branch: the exit's index k, else -1. */
int mdfi_exits_branch_end(const mdfi_net *net, int i);

/* Error helper: formats into net->err and returns st. */
mdfi_status mdfi_net_fail(mdfi_net *net, mdfi_status st, const char *fmt, ...) MDFI_PRINTF(3, 4);

#endif
