/* MDFI — Micro Darknet For Inference.  The one public header.
 *
 * Lifecycle:  mdfi_net_new → mdfi_net_load_cfg → [mdfi_net_load_weights]
 *             → [options] → mdfi_net_prepare → mdfi_net_forward ... → mdfi_net_free
 * Every function that can fail returns mdfi_status; on failure the handle
 * keeps a message naming the file:line or layer (mdfi_net_last_error).
 * Functions without a handle take an mdfi_errbuf to fill instead. */
#ifndef MDFI_H
#define MDFI_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MDFI_VERSION "0.1.0"

typedef enum {
    MDFI_OK = 0,
    MDFI_ERR_IO = 1,          /* file missing / unreadable */
    MDFI_ERR_CFG = 2,         /* malformed or unsupported cfg */
    MDFI_ERR_WEIGHTS = 3,     /* weights file bad header / too short / too long */
    MDFI_ERR_SHAPE = 4,       /* shapes that do not fit, absurd sizes */
    MDFI_ERR_NOMEM = 5,
    MDFI_ERR_ARG = 6,         /* bad argument or wrong call order */
    MDFI_ERR_IMAGE = 7,       /* unreadable / unsupported image */
    MDFI_ERR_UNSUPPORTED = 8  /* valid, but not supported by this build/CPU */
} mdfi_status;

const char *mdfi_status_name(mdfi_status st);

/* Error text for calls that have no network handle. */
typedef struct { char msg[512]; } mdfi_errbuf;

typedef struct mdfi_net mdfi_net;

/* ---- building a network ------------------------------------------------ */
mdfi_status mdfi_net_new(mdfi_net **out);
void mdfi_net_free(mdfi_net *net);
const char *mdfi_net_last_error(const mdfi_net *net);

mdfi_status mdfi_net_load_cfg(mdfi_net *net, const char *path);
/* name is used in error messages in place of a path. */
mdfi_status mdfi_net_load_cfg_text(mdfi_net *net, const char *text, const char *name);
/* Without weights every parameter is zero (BN variance one). */
mdfi_status mdfi_net_load_weights(mdfi_net *net, const char *path);

/* Build options, before prepare.  The library reads no environment
 * variable: the mdfi program and the Python layer map MDFI_KERNEL,
 * MDFI_BINARY_KERNEL, MDFI_BINARY_FUSE and MDFI_WINOGRAD onto these fields. */
typedef struct {
    int threads;               /* 1..256 (default 1) */
    const char *kernel;        /* "ref", "avx2", "avx512", "neon"; NULL or "auto": the best
                                  this CPU runs */
    const char *binary_kernel; /* "ref", "popcnt", "avx2", "avx512vpopcnt", "neon"; NULL or
                                  "auto": the one that goes with kernel */
    int binary_fuse;           /* binary layers write bits for binary readers: -1 auto (unless
                                  keep_outputs), 0 never, 1 always */
    int fuse_pool;             /* a float conv read only by a maxpool computes the pool in
                                  row bands (1, default; not with keep_outputs) or not (0) */
    int keep_outputs;          /* every layer's output stays readable after forward (costs
                                  memory; by default buffers are reused once dead) */
    int winograd;              /* fp32 3x3 stride-1 convolutions by Winograd F(4,3): -1 auto
                                  (per layer, where it is faster; its transformed weights
                                  stored where small, else made on the fly; the default),
                                  0 never (the exact direct path), 1 wherever the shape
                                  allows, stored (4x the weights), 2 wherever the shape
                                  allows, on the fly, 3 as auto but stored however large
                                  (speed before memory) */
} mdfi_options;
void mdfi_options_default(mdfi_options *opt);
/* The strings are copied; an unknown name is MDFI_ERR_ARG. */
mdfi_status mdfi_net_set_options(mdfi_net *net, const mdfi_options *opt);
/* The options in force (strings valid while the net lives). */
mdfi_status mdfi_net_get_options(const mdfi_net *net, mdfi_options *opt);
/* Shorthands for one field each. */
mdfi_status mdfi_net_set_threads(mdfi_net *net, int threads);
mdfi_status mdfi_net_set_kernel(mdfi_net *net, const char *isa);
mdfi_status mdfi_net_set_keep_outputs(mdfi_net *net, int keep);
/* Keeps layer index's output readable after forward, as the last layer's
 * and the [yolo] layers' are (an exit head, a feature map); before prepare. */
mdfi_status mdfi_net_mark_output(mdfi_net *net, int index);

/* Plans memory, packs weights.  After this nothing allocates. */
mdfi_status mdfi_net_prepare(mdfi_net *net);

/* ---- running ------------------------------------------------------------ */
/* input: CHW float32 of exactly mdfi_net_input_size() elements. */
mdfi_status mdfi_net_forward(mdfi_net *net, const float *input, size_t n);
/* Runs layers 0..last only (as ncnn's extractor does); mdfi_net_resume
 * continues from last + 1 without recomputing anything.  Between the two,
 * last's output is readable, and so is every earlier output still live
 * (marked ones always); input must stay valid until the run completes.  A
 * conv fused with its maxpool (see fuse_pool) completes with the pool. */
mdfi_status mdfi_net_forward_until(mdfi_net *net, const float *input, size_t n, int last);
/* forward_until on 8-bit pixels, CHW, each byte v standing for v / 255 as
 * images are loaded: for networks whose first layer is fixed point, which
 * quantizes the bytes through a table and holds no float copy of the image
 * (MDFI_ERR_UNSUPPORTED where a layer reads the input as floats).  The
 * results equal forward's on the floats (float)(v / 255.0). */
mdfi_status mdfi_net_forward_bytes(mdfi_net *net, const unsigned char *input, size_t n,
                                   int last);
/* Whether mdfi_net_forward_bytes runs this prepared network. */
int mdfi_net_takes_bytes(const mdfi_net *net);
/* Continues a stopped run up to layer last (-1: to the end). */
mdfi_status mdfi_net_resume(mdfi_net *net, int last);
/* Layers that ran in the current forward: [0, mdfi_net_done()). */
int mdfi_net_done(const mdfi_net *net);

typedef struct {
    int c, h, w;          /* network input shape */
} mdfi_shape;
mdfi_status mdfi_net_input_shape(const mdfi_net *net, mdfi_shape *shape);
size_t mdfi_net_input_size(const mdfi_net *net);
const char *mdfi_net_kernel_name(const mdfi_net *net);
int mdfi_net_threads(const mdfi_net *net);
size_t mdfi_net_arena_bytes(const mdfi_net *net);   /* activations */
size_t mdfi_net_weight_bytes(const mdfi_net *net);  /* prepared parameters */

/* ---- layers --------------------------------------------------------------- */
int mdfi_net_num_layers(const mdfi_net *net);
typedef struct {
    const char *type;     /* section name: "convolutional", "maxpool", ... */
    int in_c, in_h, in_w;
    int out_c, out_h, out_w;
    int filters, size, stride, groups, pad;   /* 0 where not meaningful */
    const char *activation;                   /* "" where not meaningful */
    /* Operation counts, one forward (docs/wsfracbnn.md#operation-counts). */
    double flops;         /* float operations: float multiply-adds * 2 (0 for a binary
                             convolution: its epilogue is not counted, as no conv's is) */
    int line;             /* cfg line of the section header */
    int batch_normalize, xnor;
    double bops;          /* binary multiply-adds: one per weight bit per output per bit
                             plane of the input; a gated layer: its first plane only */
    double macs;          /* multiply-accumulates, float and binary: one per weight per
                             output, whatever the input's bit planes */
    int gate;             /* 1: a precision gate ([fracconv] gate=1) decides per output
                             whether the second plane runs (mdfi_net_layer_gates) */
} mdfi_layer_info;
mdfi_status mdfi_net_layer_info(const mdfi_net *net, int index, mdfi_layer_info *info);
/* A gated layer's last forward: the outputs whose gate fired (their second
 * plane ran: bops / total binary multiply-adds each) and all its outputs;
 * 0 and 0 when it did not run in that forward (none yet, stopped before it,
 * a skipped branch).  A layer without a gate: MDFI_ERR_ARG, 0 and 0. */
mdfi_status mdfi_net_layer_gates(const mdfi_net *net, int index, long long *gated,
                                 long long *total);
/* The layer's output after the last forward.  For a layer whose buffer was
 * reused (keep_outputs off) this is MDFI_ERR_ARG, except for outputs that
 * stay live: the last layer and every [yolo] layer. */
mdfi_status mdfi_net_layer_output(const mdfi_net *net, int index,
                                  const float **data, size_t *count);
/* The net's output: the last layer, or the branch classifier of the exit
 * the last forward took. */
mdfi_status mdfi_net_output(const mdfi_net *net, const float **data, size_t *count);

/* ---- early exits (docs/early-exit.md) ------------------------------------------
 * A cfg with [exit] sections: side branches ending in a classifier, with
 * light predictors deciding whether a branch runs.  The policy and the
 * thresholds may change between forwards, without reloading. */
int mdfi_net_num_exits(const mdfi_net *net);
/* "none", "all", "branchy", "entropy-predictor" or "exit-predictor"; a policy
 * needing a predictor some exit lacks is MDFI_ERR_UNSUPPORTED. */
mdfi_status mdfi_net_set_exit_policy(mdfi_net *net, const char *policy);
const char *mdfi_net_exit_policy(const mdfi_net *net);
/* Exit k's threshold (0, 1] and gates [0, 1]; a negative value keeps one. */
mdfi_status mdfi_net_set_exit_thresholds(mdfi_net *net, int k, float threshold,
                                         float entropy_gate, float exit_gate);
typedef struct {
    int layer;            /* the [exit] section's layer */
    int from_layer;       /* the branch point */
    int first, last;      /* the branch's layers; last is its [softmax] */
    float threshold, entropy_gate, exit_gate;
    int entropy_predictor, exit_predictor;    /* 1 if the exit has it */
    double branch_macs;   /* the branch's layers */
    double predictor_macs;   /* one predictor run, pooling included */
    double path_macs;     /* the main path up to the exit, plus the branch */
} mdfi_exit_info;
mdfi_status mdfi_net_exit_info(const mdfi_net *net, int k, mdfi_exit_info *info);
/* The main path's multiply-accumulates (policy none). */
double mdfi_net_main_macs(const mdfi_net *net);
typedef struct {
    int exit;             /* the exit that fired, -1: none (the main path's end) */
    int layer;            /* the layer holding the result (mdfi_net_output) */
    float entropy;        /* its normalized entropy; -1 if it is not a classifier */
    double macs;          /* multiply-accumulates this forward spent */
    double flops, bops;   /* float and binary operations it spent (mdfi_layer_info's, of
                             the layers and predictors that ran; gated layers: the first
                             plane plus the second plane of the outputs gated) */
} mdfi_exit_result;
/* After a forward that completed (any network). */
mdfi_status mdfi_net_exit_result(const mdfi_net *net, mdfi_exit_result *r);

/* Warnings collected while parsing (unused keys...), one per line; "" if none. */
const char *mdfi_net_warnings(const mdfi_net *net);

/* ---- fixed point (docs/fixed-point.md) ---------------------------------------
 * A cfg annotated by `python -m weights_tools quantize` (fixed_in / fixed_w /
 * fixed_out keys) runs with integer arithmetic only; mdfi_net_load_weights
 * recognises its .qweights file by the magic.  [yolo] and [softmax] stay
 * float: they dequantize their input. */
int mdfi_net_is_fixed(const mdfi_net *net);
typedef struct {
    int out_bits, out_frac;   /* output format; out_bits 0 = float32 */
    int in_bits, in_frac;     /* conv/connected: the input's operand format; other
                                 integer layers: in[0]'s format; 0 = float */
    int w_bits, w_frac;       /* conv/connected weights; 0 = none */
    const char *kernel;       /* integer GEMM variant after prepare, else "" */
    int w_scale;              /* weights: 0 one power of two (w_frac), 1 a power of two per
                                 output channel (fixed_w=B:ch), 2 a multiplier and a power
                                 of two per output channel (fixed_w=B:mul) */
} mdfi_layer_format;
mdfi_status mdfi_net_layer_format(const mdfi_net *net, int index, mdfi_layer_format *fmt);
/* A fixed-point layer's output: int8_t (bits 8) or int16_t (bits 16) values,
 * real value = q * 2^-frac.  Readable as for mdfi_net_layer_output (which
 * refuses integer layers). */
mdfi_status mdfi_net_layer_output_int(const mdfi_net *net, int index, const void **data,
                                      size_t *count, int *bits, int *frac);

/* ---- profiling -------------------------------------------------------------- */
/* Times every layer of each forward while on (any time; default off). */
mdfi_status mdfi_net_set_profile(mdfi_net *net, int on);
/* Milliseconds layer index took in the last forward run with profiling on
 * (0 if none was); -1 for a bad index or before any forward. */
double mdfi_net_layer_time(const mdfi_net *net, int index);

/* ---- images ----------------------------------------------------------------- */
typedef struct {
    int w, h, c;
    float *data;          /* CHW, values byte/255.0 as Darknet */
} mdfi_image;

/* Reads an image file with 3 channels forced.  The format comes from the
 * leading bytes: binary PNM (P5/P6) or JPEG (baseline or progressive, 8-bit,
 * grey/YCbCr/RGB), decoded to the same bytes as Darknet's stb_image. */
mdfi_status mdfi_image_read(const char *path, mdfi_image *img, mdfi_errbuf *err);
/* The decoder mdfi_image_read would use for a file starting with these n
 * bytes (3 are enough): "mdfi-jpeg", "mdfi-pnm", or NULL for a format the C
 * core does not decode. */
const char *mdfi_image_sniff(const void *head, size_t n);
/* As mdfi_image_read, from a whole file's bytes in memory; name (may be
 * NULL) labels error messages. */
mdfi_status mdfi_image_decode(const void *data, size_t size, const char *name,
                              mdfi_image *img, mdfi_errbuf *err);
/* The decoder's 8-bit pixels before the float conversion: HWC, *c = 1 (grey)
 * or 3 (RGB).  Free them with mdfi_pixels_free. */
mdfi_status mdfi_image_decode_pixels(const void *data, size_t size, const char *name,
                                     unsigned char **pixels, int *w, int *h, int *c,
                                     mdfi_errbuf *err);
void mdfi_pixels_free(unsigned char *pixels);
/* From 8-bit interleaved pixels (HWC, c = 1 or 3); 3 channels forced. */
mdfi_status mdfi_image_from_bytes(const unsigned char *pixels, int w, int h, int c,
                                  mdfi_image *img, mdfi_errbuf *err);
void mdfi_image_free(mdfi_image *img);

/* Darknet's letterbox_image: out is 3 x net_h x net_w. */
mdfi_status mdfi_letterbox(const mdfi_image *img, int net_w, int net_h, float *out,
                           mdfi_errbuf *err);

/* ---- detection ---------------------------------------------------------------- */
typedef struct {
    int det_index;        /* box number; several entries may share one box */
    int class_id;
    float prob, objectness;
    float x, y, w, h;     /* relative centre / size, corrected for the letterbox */
    int left, top, right, bottom;   /* pixels as Darknet draws them */
} mdfi_detection;

/* Decodes the [yolo] layers after a forward on a letterboxed image of
 * im_w x im_h, runs do_nms_sort(nms) (nms <= 0: none) and lists every
 * (box, class) with prob > thresh in Darknet's print order.  The list stays
 * valid until the next call on this net. */
mdfi_status mdfi_net_detect(mdfi_net *net, int im_w, int im_h, float thresh, float nms,
                            const mdfi_detection **dets, int *count);

#ifdef __cplusplus
}
#endif
#endif
