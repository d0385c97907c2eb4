/* A layer type is one table of functions, registered by section name.
 *
 *   parse    cfg section + input shapes -> typed spec and output shape
 *   load     read its parameters from a .weights file (Darknet order)
 *   prepare  pack parameters for the chosen kernel, size scratch; may allocate
 *   forward  compute; never allocates, never fails
 *   destroy  free what parse/load/prepare allocated
 * Only parse and forward are required. */
#ifndef MDFI_LAYERS_LAYER_H
#define MDFI_LAYERS_LAYER_H

#include <stddef.h>

#include "base/cfg.h"
#include "base/threads.h"
#include "io/weights.h"
#include "kernels/cpu.h"

#define MDFI_MAX_INPUTS 8

typedef struct mdfi_layer mdfi_layer;

/* A fixed-point format: bits-wide two's complement, value = q * 2^-frac. */
typedef struct {
    int bits, frac;            /* bits 0: float32 */
} mdfi_qfmt;

/* What parse sees of the network built so far. */
typedef struct {
    const mdfi_cfg *cfg;
    mdfi_layer *layers;    /* layers[0..index-1] are complete */
    int index;
    int net_c, net_h, net_w;
} mdfi_parse_ctx;

typedef struct {
    mdfi_isa isa;
    int threads;
    int keep_outputs;      /* every output must stay readable as floats: no fusion */
    /* The .weights file just after what load read (NULL: no file), for a
     * layer that streams its largest array straight into packed form. */
    mdfi_weights_reader *weights;
} mdfi_prepare_ctx;

/* Per-forward context: the inputs resolved to buffers, scratch, threads. */
typedef struct {
    const float *in[MDFI_MAX_INPUTS];
    size_t in_n[MDFI_MAX_INPUTS];   /* element count of each input */
    float *out;
    void **scratch;        /* [threads] per-thread scratch of prepare's size */
    mdfi_pool *pool;
} mdfi_run_ctx;

typedef struct {
    const char *name;
    mdfi_status (*parse)(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                         mdfi_errbuf *err);
    mdfi_status (*load)(mdfi_layer *l, mdfi_weights_reader *r, mdfi_errbuf *err);
    mdfi_status (*prepare)(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err);
    void (*forward)(const mdfi_layer *l, mdfi_run_ctx *ctx);
    void (*destroy)(mdfi_layer *l);
} mdfi_layer_ops;

struct mdfi_layer {
    const mdfi_layer_ops *ops;
    int index, line;
    int n_in;
    int in[MDFI_MAX_INPUTS];   /* producing layer indices; -1 = network input */
    int in_c, in_h, in_w;      /* shape of in[0] */
    int out_c, out_h, out_w;
    int alias_input;           /* output is in[0]'s buffer (dropout) */
    /* Bytes of the output buffer when it does not hold out_c*out_h*out_w
     * floats (integer or bit-packed outputs); 0 = floats.  The buffer is
     * still passed as float* and cast by the layers that agree on its type. */
    size_t out_bytes;
    size_t scratch_bytes;      /* per-thread scratch wanted by forward */
    size_t n_params;           /* floats this layer reads from a .weights file */
    size_t param_bytes;        /* prepared parameters kept for forward */
    /* [convolutional] whose only reader is the next layer, a [maxpool]:
     * its forward computes the output in row bands and pools each band into
     * the maxpool's output, so its own output is never stored (core/net.c). */
    int fused;
    double flops;
    /* descriptive fields for mdfi_layer_info */
    int filters, size, stride, groups, pad, batch_normalize, xnor;
    const char *activation;
    /* Fixed-point formats (layers/fixed.h, docs/fixed-point.md); bits 0 = float32. */
    mdfi_qfmt q_out;           /* the output */
    mdfi_qfmt q_in;            /* conv/connected: the input's operand format; heads: in[0]'s */
    mdfi_qfmt q_w;             /* conv/connected weights */
    void *priv;                /* the type's own spec and parameters */
};

/* Looks a section name up in the registry; NULL if unknown. */
const mdfi_layer_ops *mdfi_layer_find(const char *section);

/* Output element count (shapes are validated at parse to fit in int). */
static inline size_t mdfi_layer_outputs(const mdfi_layer *l)
{
    return (size_t)l->out_c * (size_t)l->out_h * (size_t)l->out_w;
}

/* Layer types other code recognizes by their ops table (the float conv, maxpool). */
extern const mdfi_layer_ops mdfi_convolutional_ops, mdfi_maxpool_ops;

/* [maxpool] l: output rows [oy0, oy1) of every channel from input rows
 * [r0, r1) of each, held at in (channel stride (r1 - r0) * in_w). */
void mdfi_maxpool_band(const mdfi_layer *l, const float *in, int r0, int r1, int oy0, int oy1,
                       float *out);

/* Shape helpers for parse: check sizes are sane (product < 2^31). */
mdfi_status mdfi_layer_check_shape(const mdfi_parse_ctx *ctx, mdfi_cfg_section *s,
                                   int c, int h, int w, mdfi_errbuf *err);

/* Resolves one layer reference from a cfg value (negative = relative). */
mdfi_status mdfi_layer_ref(const mdfi_parse_ctx *ctx, mdfi_cfg_section *s,
                           const char *key, int value, int *index, mdfi_errbuf *err);

#endif
