/* What the integer-stream binary layers share ([dualpath], docs/dualpath.md,
 * and [fracconv], docs/wsfracbnn.md): the convolution geometry and the
 * second source read at parse, the fixed-point fold of r = round(A P + B),
 * the sign bits of the latent weights, and the requantization of a block
 * of output columns (kernels/dpath.h) with the second source added. */
#ifndef MDFI_LAYERS_DP_COMMON_H
#define MDFI_LAYERS_DP_COMMON_H

#include <stdint.h>

#include "kernels/dpath.h"
#include "layers/layer.h"

/* The start of parse: the zeroed spec (size bytes) as l->spec; keys the
 * type refuses (refused: space-separated; why: the reason the message gives)
 * and an activation other than linear are errors naming file:line and the
 * layer. */
mdfi_status mdfi_dp_parse_start(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                size_t size, const char *refused, const char *why,
                                mdfi_errbuf *err);

/* filters, size, stride, pad/padding of a section, checked; the output shape
 * from the layer's input shape (l->in_*). */
typedef struct {
    int filters, size, stride, padding, out_h, out_w;
} mdfi_dp_geom;

mdfi_status mdfi_dp_parse_geom(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                               mdfi_dp_geom *g, mdfi_errbuf *err);

/* The second source from= (-1, the default: the layer's own input) as
 * l->in[1], n_in = 2; it must have the output's height and width and
 * channels that divide filters (*src_c). */
mdfi_status mdfi_dp_parse_source(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                                 const mdfi_dp_geom *g, int *src_c, mdfi_errbuf *err);

/* The padded rows [*r0, *r1) that image rows [y0, y1) own: their own, and
 * the top / bottom halo rows with the first / last rows. */
void mdfi_dp_padded_rows(const mdfi_bconv *bc, int y0, int y1, int *r0, int *r1);

/* Zeroes the padded rows of image rows [y0, y1) (mdfi_dp_padded_rows) in
 * planes x words word planes of a padded input (mdfi_bconv_input_words'
 * layout). */
void mdfi_dp_zero_rows(const mdfi_bconv *bc, int planes, uint64_t *out, int y0, int y1);

/* Sets the layer's descriptive fields (binary path, linear, the geometry). */
void mdfi_dp_describe(mdfi_layer *l, const mdfi_dp_geom *g);

/* The per-output-channel fixed point: Mul, Off plus the rounding term
 * 2^(S-1), S, with its int32 split (kernels/dpath.h); and the kernel's
 * alpha = 1 / beta = 0 so that it writes (float)P into the output. */
typedef struct {
    int M;
    float *one, *zero;
    mdfi_dpath_rq *rq;
} mdfi_dp_fixed;

int mdfi_dp_fixed_alloc(mdfi_dp_fixed *f, int M);   /* 0, or -1: out of memory */
void mdfi_dp_fixed_free(mdfi_dp_fixed *f);
size_t mdfi_dp_fixed_bytes(const mdfi_dp_fixed *f);

/* Channel m from its folded A and B (float32): the frexp fixed point with
 * the refusals of docs/dualpath.md, messages "layer N [type]: channel m ...". */
mdfi_status mdfi_dp_fixed_set(mdfi_dp_fixed *f, int m, float A, float B, const mdfi_layer *l,
                              const char *type, mdfi_errbuf *err);

/* range must be a positive finite number. */
mdfi_status mdfi_dp_check_range(float lambda, const mdfi_layer *l, const char *type,
                                mdfi_errbuf *err);

/* n latent weights -> bytes, 1 where w > 0 (malloc'd; NULL: out of memory). */
unsigned char *mdfi_dp_weight_signs(const float *w, size_t n);

/* Columns [n0, n1) of every output channel (N per channel): out holds
 * (float)P (with d0, else NULL: P = 2 out + d0, d0 laid out as out), which
 * becomes z = clamp(r + s) in place, s read from channel m mod src_c of
 * src (N per channel). */
void mdfi_dp_requant_columns(const mdfi_dpath_loops *loops, const mdfi_dp_fixed *f, float *out,
                             const float *d0, const float *src, int src_c, size_t N, int n0,
                             int n1);

/* The start of prepare: no bit tensors in or out, no fusion; the binary
 * kernel forced by the options or chosen for the ISA. */
mdfi_status mdfi_dp_kernel(const mdfi_layer *l, const mdfi_prepare_ctx *ctx, const char *type,
                           const mdfi_bgemm_kernel **kern, mdfi_errbuf *err);

/* Float output of the binary kernel into out (N per channel): (float)P. */
void mdfi_dp_bout(mdfi_bout *o, float *out, size_t N, const mdfi_dp_fixed *f);

/* Forward in two pool runs over a job whose first member is an mdfi_dp_split:
 * rows(job, task, thread) for the threads' shares of the input rows (packing),
 * then cols(job, task, thread) for chunks of whole 32-column panels of the
 * N outputs.  The arithmetic is integer, so any split gives the same bits. */
typedef struct {
    int N, chunk, tasks;
} mdfi_dp_split;

void mdfi_dp_run(mdfi_pool *pool, int N, mdfi_task_fn rows, mdfi_task_fn cols, void *job);
/* Rows [*y0, *y1) of H for a rows task, columns [*n0, *n1) for a cols task;
 * each returns whether the range is non-empty. */
int mdfi_dp_rows(const mdfi_dp_split *s, int H, int task, int *y0, int *y1);
int mdfi_dp_cols(const mdfi_dp_split *s, int task, int *n0, int *n1);

#endif
