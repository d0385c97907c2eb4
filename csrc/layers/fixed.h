/* Fixed-point (integer-only) layers: the MDFI quantization.
 *
 * A cfg section with fixed_in / fixed_w / fixed_out keys (BITS:FRAC, value =
 * q * 2^-FRAC, BITS 8 or 16) runs its type's fixed-point variant (the
 * network chooses, net/passes.c); [yolo] and [softmax] reading an integer
 * layer run their fixed variant, a float head that dequantizes first.  Outputs are int8_t / int16_t
 * buffers (mdfi_layer.out_bytes).  docs/fixed-point.md specifies every
 * operation; weights_tools/fixed_ref.py is the bit-exact numpy reference. */
#ifndef MDFI_LAYERS_FIXED_H
#define MDFI_LAYERS_FIXED_H

#include <stdint.h>

#include "kernels/activations.h"
#include "layers/layer.h"

#define MDFI_FX_FRAC_MIN (-16)
#define MDFI_FX_FRAC_MAX 31
#define MDFI_FX_MULT_MAX 32767   /* fixed_w=B:mul multipliers: a 16-bit signed operand */
#define MDFI_FX_LEAKY_MULT 3277   /* leaky slope 3277 / 2^15 = 0.100006103515625 */
#define MDFI_FX_LEAKY_SHIFT 15

/* The record mode of a fixed conv/connected layer's weights (0 one power of
 * two, 1 per channel, 2 per-channel multipliers); 0 for other layers. */
int mdfi_fixed_weight_scale(const mdfi_layer *l);

/* bind of the variants whose inputs are all integer layers: every input
 * must be integer; sets q_in to in[0]'s format, reads fixed_out. */
mdfi_status mdfi_fx_bind_int_inputs(mdfi_layer *l, const mdfi_bind_ctx *ctx, mdfi_errbuf *err);
/* The integer form of a layer's activation (0 linear, 1 relu, 2 leaky, as
 * mdfi_fx_activate and mdfi_qact take it); other activations have none, an
 * error naming the section line. */
mdfi_status mdfi_fx_bind_act(const mdfi_bind_ctx *ctx, mdfi_activation a, int *out,
                             mdfi_errbuf *err);
/* Runs fn(l, ctx, c) for every output channel, split over the pool. */
typedef void (*mdfi_fx_channel_fn)(const mdfi_layer *l, const mdfi_run_ctx *ctx, int c);
void mdfi_fx_by_channel(const mdfi_layer *l, mdfi_run_ctx *ctx, mdfi_fx_channel_fn fn);

/* ---- arithmetic shared by the fixed layers (docs/fixed-point.md) ---------- */

/* floor(x / 2^s + 1/2) for s > 0, x * 2^-s for s <= 0, then saturated to
 * bits; exact for any int64 x and shift (no intermediate overflow). */
static inline int32_t mdfi_fx_requant(int64_t x, int s, int bits)
{
    const int64_t hi = bits == 8 ? 127 : 32767, lo = -hi - 1;
    if (s > 0) {
        int s1 = s < 63 ? s : 63, s0 = s - 1 < 63 ? s - 1 : 63;
        x = (x >> s1) + ((x >> s0) & 1);
    } else if (x != 0) {
        const int64_t lim = (int64_t)1 << 24;
        x = x < -lim ? -lim : x > lim ? lim : x;
        x *= (int64_t)1 << (-s < 20 ? -s : 20);
    }
    return (int32_t)(x < lo ? lo : x > hi ? hi : x);
}

/* Converts n integers of format from (int8/int16) to format to. */
void mdfi_fx_convert(const void *src, mdfi_qfmt from, void *dst, mdfi_qfmt to, size_t n);
/* float32 -> to: floor(x * 2^frac + 1/2) in double, saturated; NaN -> 0. */
void mdfi_fx_quantize(const float *src, void *dst, mdfi_qfmt to, size_t n);
/* 8-bit pixels v -> to, as mdfi_fx_quantize does the floats (float)(v / 255.0)
 * images load as: through a 256-entry table. */
void mdfi_fx_quantize_bytes(const unsigned char *src, void *dst, mdfi_qfmt to, size_t n);
/* (int8/int16 of fmt) -> float32, exact. */
void mdfi_fx_dequantize(const void *src, mdfi_qfmt fmt, float *dst, size_t n);
/* Integer activation of an accumulator (linear 0, relu 1, leaky 2). */
static inline int64_t mdfi_fx_activate(int64_t a, int act)
{
    if (act == 1)
        return a > 0 ? a : 0;
    if (act == 2 && a < 0)
        return (a * MDFI_FX_LEAKY_MULT) >> MDFI_FX_LEAKY_SHIFT;   /* arithmetic: floor */
    return a;
}
static inline int32_t mdfi_fx_get(const void *p, int bits, size_t i)
{
    return bits == 8 ? ((const int8_t *)p)[i] : ((const int16_t *)p)[i];
}
static inline void mdfi_fx_put(void *p, int bits, size_t i, int32_t v)
{
    if (bits == 8)
        ((int8_t *)p)[i] = (int8_t)v;
    else
        ((int16_t *)p)[i] = (int16_t)v;
}

/* Reads the fixed_* keys of a section; a missing key leaves bits 0. */
mdfi_status mdfi_fx_read_format(const mdfi_cfg *cfg, mdfi_cfg_section *s, const char *key,
                                mdfi_qfmt *f, mdfi_errbuf *err);
/* Output buffer bytes for a format. */
void mdfi_fx_set_output(mdfi_layer *l, mdfi_qfmt out);

#endif
