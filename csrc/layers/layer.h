/* A layer type is one registry row (layers/registry.c):
 *
 *   name, alias     the cfg section names it answers to
 *   kind            flags the network's passes and the detect glue ask
 *   parse           cfg section + input shapes -> its typed spec (l->spec),
 *                   its inputs and output shape; never allocates beyond the spec
 *   variants        one per numeric path (float, fixed point, binary): the
 *                   code that runs the parsed spec on that path
 *
 * A variant's functions, called by the network in this order:
 *   bind     reads the path's own keys (formats...) and what it needs of its
 *            inputs' formats; sets the output format (q_out, out_bytes)
 *   load     takes its parameters from the one parameter source (io/params.h);
 *            called before every prepare, with NULL when there is none (zeros)
 *   prepare  packs them for the chosen kernel, sizes scratch; may allocate
 *   forward  computes; never allocates, never fails
 *   destroy  frees l->priv (what bind/load/prepare made)
 * Only forward is required.  Which variant runs, and the decisions that
 * involve several layers (conv->maxpool fusion, bit tensors between binary
 * layers), are the network's (net/passes.c): a layer never reads or changes
 * another layer. */
#ifndef MDFI_LAYERS_LAYER_H
#define MDFI_LAYERS_LAYER_H

#include <stddef.h>

#include "base/cfg.h"
#include "base/limits.h"
#include "base/threads.h"
#include "io/params.h"
#include "kernels/bgemm.h"
#include "kernels/cpu.h"


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
    int binary_kind;       /* mdfi_bkind forced by the options, or -1: chosen for isa */
    int winograd;          /* mdfi_options.winograd: -1 auto, 0 never, 1 where it applies */
    int isa_forced;        /* isa was asked for (not the best this CPU runs) */
    /* The parameter source just after what load read (NULL: none), for a
     * layer that streams its largest array straight into packed form. */
    mdfi_params *params;
} mdfi_prepare_ctx;

/* Per-forward context: the inputs resolved to buffers, scratch, threads. */
typedef struct {
    const float *in[MDFI_LIMIT_INPUTS];
    size_t in_n[MDFI_LIMIT_INPUTS];   /* element count of each input */
    float *out;
    void **scratch;        /* [threads] per-thread scratch of prepare's size */
    mdfi_pool *pool;
    long long gated;       /* out, layers with l->gate: outputs whose precision gate fired
                              (0 on entry; the network keeps it in l->gated) */
    const unsigned char *in_bytes;   /* the network's input as 8-bit pixels, in[0]
                                        NULL (layers with takes_bytes only) */
} mdfi_run_ctx;

/* What bind sees: the section (for the path's own keys) and the layers
 * before this one, whose output formats are final. */
typedef struct {
    const mdfi_cfg *cfg;
    mdfi_cfg_section *sec;
    const mdfi_layer *layers;
    int index;
} mdfi_bind_ctx;

typedef enum { MDFI_PATH_FLOAT = 0, MDFI_PATH_FIXED = 1, MDFI_PATH_BINARY = 2 } mdfi_path;
#define MDFI_PATHS 3

typedef struct {
    mdfi_status (*bind)(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err);
    mdfi_status (*load)(mdfi_layer *l, mdfi_params *src, mdfi_errbuf *err);
    mdfi_status (*prepare)(mdfi_layer *l, const mdfi_prepare_ctx *ctx, mdfi_errbuf *err);
    void (*forward)(const mdfi_layer *l, mdfi_run_ctx *ctx);
    void (*destroy)(mdfi_layer *l);
    /* the kernel variant it runs after prepare ("" or NULL: none to name) */
    const char *(*kernel_name)(const mdfi_layer *l);
} mdfi_layer_variant;

/* Kind flags of a layer type. */
#define MDFI_KIND_GEMM 1u      /* convolutional/connected: weights and a GEMM */
#define MDFI_KIND_HEAD 2u      /* output for the caller (yolo, softmax): float, dequantizes */
#define MDFI_KIND_YOLO 4u      /* decoded into boxes after forward; its spec is mdfi_yolo_spec */
#define MDFI_KIND_ALIAS 8u     /* identity: its output is in[0]'s buffer (dropout) */
#define MDFI_KIND_MAXPOOL 16u  /* a max pool a conv may compute in bands, and that runs on bits */
#define MDFI_KIND_CONV 32u     /* a spatial convolution (may be fused with a maxpool reader) */
#define MDFI_KIND_EXIT 64u     /* an early exit: its spec is mdfi_exit_spec (layers/exit.h) */

typedef struct {
    const char *name;
    const char *alias;         /* or NULL */
    unsigned kind;
    mdfi_status (*parse)(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                         mdfi_errbuf *err);
    void (*free_spec)(void *spec);
    const mdfi_layer_variant *path[MDFI_PATHS];
} mdfi_layer_type;

/* A max pool's geometry, copied into a conv that computes it (fusion). */
typedef struct {
    int size, stride, pad;     /* Darknet's padding: windows start at -(pad/2) */
    int in_h, in_w, out_h, out_w, c;
} mdfi_pool2d;

struct mdfi_layer {
    const mdfi_layer_type *type;
    const mdfi_layer_variant *run;   /* type->path[path], set by the network */
    mdfi_path path;            /* chosen at build; run may be another path's variant
                                  when the passes say so (a maxpool on bits) */
    int index, line;
    int n_in;
    int in[MDFI_LIMIT_INPUTS];   /* producing layer indices; -1 = network input */
    int in_c, in_h, in_w;      /* shape of in[0] */
    int out_c, out_h, out_w;
    /* Bytes of the output buffer when it does not hold out_c*out_h*out_w
     * floats (integer or bit-packed outputs); 0 = floats.  The buffer is
     * still passed as float* and cast by the layers that agree on its type. */
    size_t out_bytes;
    size_t scratch_bytes;      /* per-thread scratch wanted by forward */
    size_t lead_bytes;         /* more in the calling thread's block (scratch[0]), past
                                  scratch_bytes: a serial pre-pass's result every task reads */
    int takes_bytes;           /* prepare: forward reads the network's input as 8-bit
                                  pixels when given so (mdfi_run_ctx.in_bytes) */
    size_t n_params;           /* floats this layer reads from a .weights file */
    size_t param_bytes;        /* prepared parameters kept for forward */
    /* Operation counts (parse; docs/wsfracbnn.md#operation-counts):
     *   flops  float operations: float multiply-adds x 2, element-wise ops
     *          as Darknet counts them; no convolution's per-output epilogue;
     *   bops   binary multiply-adds: one per weight bit per output per bit
     *          plane of the input (a gated layer: its first plane only);
     *   macs   multiply-accumulates, float and binary: one per weight per
     *          output whatever the input's bit planes (0: flops / 2, set by
     *          the network after parse). */
    double flops, bops, macs;
    int gate;                  /* a precision gate: forward reports its gated outputs */
    long long gated;           /* the last run's gated outputs (the network's copy of
                                  mdfi_run_ctx.gated) */
    /* descriptive fields for mdfi_layer_info */
    int filters, size, stride, groups, pad, batch_normalize, xnor;
    const char *activation;
    /* Fixed-point formats (layers/fixed.h, docs/fixed-point.md); bits 0 = float32. */
    mdfi_qfmt q_out;           /* the output */
    mdfi_qfmt q_in;            /* conv/connected: the input's operand format; heads: in[0]'s */
    mdfi_qfmt q_w;             /* conv/connected weights */
    mdfi_bquant in_q;          /* binary layers: how they quantize their input (parse) */
    /* Decisions of the network's passes (net/passes.c), made before prepare. */
    int fused;                 /* a conv that computes its maxpool reader's output in row
                                  bands (pool): its own output is never stored */
    mdfi_pool2d pool;
    int bits_in;               /* the input arrives as bit planes (of the producer's bits_q) */
    int bits_out;              /* the output is written as bit planes of bits_q */
    mdfi_bquant bits_q;
    int keep;                  /* the caller reads this output after forward */
    void *spec;                /* the type's parsed spec */
    void *priv;                /* the running variant's state */
    int share_from;            /* 1 + the layer whose .weights floats it reads again
                                  ([convolutional] share_index); 0: its own */
};

/* Looks a section name (or alias) up in the registry; NULL if unknown. */
const mdfi_layer_type *mdfi_layer_type_find(const char *section);
/* The section names of the types that have a variant for path, as
 * "a, b and c" into buf (for messages). */
void mdfi_layer_types_with(mdfi_path path, char *buf, size_t len);
int mdfi_layer_has_kind(const mdfi_layer *l, unsigned kind);

/* Output element count (shapes are validated at parse to fit in int). */
static inline size_t mdfi_layer_outputs(const mdfi_layer *l)
{
    return (size_t)l->out_c * (size_t)l->out_h * (size_t)l->out_w;
}

/* Output rows [oy0, oy1) of every channel of a max pool from input rows
 * [r0, r1) of each, held at in (channel stride (r1 - r0) * in_w). */
void mdfi_maxpool_band(const mdfi_pool2d *p, const float *in, int r0, int r1, int oy0, int oy1,
                       float *out);
/* The same in fixed point: int8 or int16 (bits) in and out, one format (no
 * requantization); p->out_w <= 1024. */
void mdfi_fx_maxpool_band(const mdfi_pool2d *p, int bits, const void *in, int r0, int r1,
                          int oy0, int oy1, void *out);
/* The same over int32 sums (a fused conv that pools before requantizing),
 * pool row oy of channel c to out + c ldo + (oy - oy0) out_w. */
void mdfi_fx_maxpool_band32(const mdfi_pool2d *p, const int32_t *in, int r0, int r1, int oy0,
                            int oy1, int32_t *out, size_t ldo);
/* The same for a 2x2 / 2 pool (windows from row and column 0, an even
 * in_w) whose rows hold the column pairs' maxima already (in_w / 2 values,
 * mdfi_qepilogue.pairs): the rest of the pool, the larger of two rows. */
void mdfi_fx_maxpool_pairs32(const mdfi_pool2d *p, const int32_t *in, int r0, int r1, int oy0,
                             int oy1, int32_t *out, size_t ldo);

/* Shape helpers for parse: check sizes are sane (product < 2^31). */
mdfi_status mdfi_layer_check_shape(const mdfi_parse_ctx *ctx, mdfi_cfg_section *s,
                                   int c, int h, int w, mdfi_errbuf *err);

/* A pool's keys as AlexeyAB reads them ([maxpool], [local_avgpool]): stride,
 * stride_x and stride_y (default stride: l->stride and *sy), size (default
 * stride), padding (default size - 1; windows start at -padding/2), checked;
 * sets the output shape, (in + padding - size) / stride + 1. */
mdfi_status mdfi_layer_pool_parse(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                  int *sy, mdfi_errbuf *err);

/* Resolves one layer reference from a cfg value (negative = relative). */
mdfi_status mdfi_layer_ref(const mdfi_parse_ctx *ctx, mdfi_cfg_section *s,
                           const char *key, int value, int *index, mdfi_errbuf *err);

#endif
