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

/* Sets the layer's descriptive fields (binary path, linear, the geometry). */
void mdfi_dp_describe(mdfi_layer *l, const mdfi_dp_geom *g);

/* The per-output-channel fixed point: Mul, Off plus the rounding term
 * 2^(S-1), S; and the kernel's alpha = 1 / beta = 0 so that it writes
 * (float)P into the output. */
typedef struct {
    int M;
    float *one, *zero;
    int64_t *mul, *off;
    int *shift_s;
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
 * (float)P, which becomes z = clamp(r + s) in place, s read from channel
 * m mod src_c of src (N per channel). */
void mdfi_dp_requant_columns(const mdfi_dpath_loops *loops, const mdfi_dp_fixed *f, float *out,
                             const float *src, int src_c, size_t N, int n0, int n1);

/* Columns per task: whole 32-column panels, about N / threads. */
int mdfi_dp_column_chunk(int N, int threads);

#endif
