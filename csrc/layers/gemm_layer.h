/* What [convolutional] and [connected] share: their parsed spec, and the
 * float variant's parameters, BN folding, packing for the GEMM kernel and
 * threaded forward (the two types differ only in parse and load). */
#ifndef MDFI_LAYERS_GEMM_LAYER_H
#define MDFI_LAYERS_GEMM_LAYER_H

#include "kernels/activations.h"
#include "kernels/sgemm.h"
#include "kernels/winograd.h"
#include "layers/layer.h"

/* Darknet's float arrays of a conv/connected layer, held only between load
 * and prepare (the float and the binary paths). */
typedef struct {
    float *biases, *scales, *mean, *var, *weights;
} mdfi_darknet_arrays;

/* Allocates them for n outputs (zeros; BN scales and variance 1), the
 * weights (nw floats) only if with_weights; frees earlier ones first. */
mdfi_status mdfi_darknet_alloc(mdfi_darknet_arrays *a, const mdfi_layer *l, size_t n, int bn,
                               size_t nw, int with_weights, mdfi_errbuf *err);
/* Reads what precedes a conv's weights: biases, then with BN scales,
 * rolling_mean, rolling_variance. */
mdfi_status mdfi_darknet_read_head(mdfi_darknet_arrays *a, mdfi_params *src, size_t n,
                                   int bn, mdfi_errbuf *err);
void mdfi_darknet_free(mdfi_darknet_arrays *a);

/* The spec of both types (l->spec), parsed once for every path. */
typedef struct {
    int connected;
    int groups, bn;
    mdfi_activation act;
    int m, k;                 /* outputs per group, weights per output */
    mdfi_conv_geom geom;      /* per group; connected: k x 1 x 1 */
    mdfi_bquant inq;          /* xnor=1: how the input is quantized (abits, astep) */
} mdfi_gemm_spec;

/* Floats of the layer in a Darknet .weights file. */
size_t mdfi_gemm_param_count(const mdfi_gemm_spec *s);

/* The float variant's state (l->priv). */
typedef struct {
    mdfi_gemm_spec s;         /* the parsed spec, copied at bind */
    int stream;               /* weights come last in the file: prepare reads them a
                                 panel at a time instead of load reading them whole */
    mdfi_darknet_arrays raw;
    /* prepared */
    const mdfi_sgemm_kernel *kern;
    float *bias;              /* BN folded in */
    float *packed;            /* groups * packed_floats */
    size_t packed_floats;
    mdfi_epilogue epi;
    mdfi_activate_fn act;     /* the activation the epilogue does not do, on this
                                 kernel path (NULL: none) */
    int band;                 /* fused (mdfi_layer.fused): maxpool output rows per task */
    size_t ws_bytes;          /* GEMM workspace; a fused conv's band follows it */
    int wino_on;              /* runs by Winograd: 1 packed holds its U, 2 its taps (on
                                 the fly); wino is its plan */
    mdfi_wino wino;
} mdfi_gemm_params;

/* Allocates Darknet's arrays (zeros; BN variance 1) for n outputs; the
 * weights only when not streamed. */
mdfi_status mdfi_gemm_alloc(mdfi_layer *l, mdfi_gemm_params *p, mdfi_errbuf *err);
/* The float variant's functions but load (conv and connected read
 * their files in different orders). */
mdfi_status mdfi_gemm_bind(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err);
mdfi_status mdfi_gemm_prepare(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err);
void mdfi_gemm_forward(const mdfi_layer *l, mdfi_run_ctx *ctx);
void mdfi_gemm_destroy(mdfi_layer *l);

/* Conv -> maxpool band fusion (l->fused), shared by the float and the
 * fixed-point variants: the pool output rows a task makes (*band, whole pool
 * rows, about 64 K conv outputs) and the band's bytes at elem bytes a conv
 * output; then, for task t, its pool rows [py0, py1) and the conv rows
 * [cy0, cy1) they read. */
typedef struct {
    int py0, py1, cy0, cy1;
} mdfi_fuse_span;

size_t mdfi_fuse_band(const mdfi_layer *l, size_t elem, int *band);
mdfi_fuse_span mdfi_fuse_rows(const mdfi_layer *l, int band, int task);

#endif
