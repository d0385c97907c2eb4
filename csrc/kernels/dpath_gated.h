/* Internal to the [fracconv] gated pass (mdfi_dpath_gated, kernels/dpath.h):
 * its loops, shared by the portable form (kernels/dpath.c) and the ISA files,
 * each passing its own popcount.  Always inlined, so that the popcount is one
 * instruction where the file is built for it.  Not part of any public
 * interface. */
#ifndef MDFI_KERNELS_DPATH_GATED_H
#define MDFI_KERNELS_DPATH_GATED_H

#include "kernels/dpath.h"

#define MDFI_GATED_INLINE static inline __attribute__((always_inline))

typedef int (*mdfi_gated_popcount)(uint64_t x);

/* out[n] for n in [n0, n1): (float)D1 -> (float)(2 D1), and the pixels with
 * 2 D1 > G listed (no branch on the gate: its outcome is data).  Returns
 * their count. */
MDFI_GATED_INLINE int mdfi_gated_list(float *out, int n0, int n1, int32_t G, int32_t *list)
{
    int k = 0;
    for (int n = n0; n < n1; ++n) {
        const int32_t d = 2 * (int32_t)out[n];
        out[n] = (float)d;
        list[k] = n;
        k += d > G;
    }
    return k;
}

/* P of one listed pixel n: out[n] holds 2 D1, d is its count. */
MDFI_GATED_INLINE void mdfi_gated_finish(float *out, int32_t n, const int32_t *kc,
                                         const int32_t *cls, int d)
{
    out[n] = (float)((int32_t)out[n] + kc[cls[n]] - 2 * d);
}

/* The k listed pixels' P (out[n] holds 2 D1), with the popcount popc: the
 * window's words at their offsets. */
MDFI_GATED_INLINE void mdfi_gated_counts(const mdfi_dpath_gate_geom *g, const uint64_t *s0,
                                         const uint64_t *w, const int32_t *kc, float *out,
                                         const int32_t *list, int k, mdfi_gated_popcount popc)
{
    for (int j = 0; j < k; ++j) {
        const int32_t n = list[j];
        const uint64_t *p = s0 + g->base[n];
        int d = 0;
        for (int i = 0; i < g->nt; ++i)
            d += popc(p[g->off[i]] ^ w[i]);
        mdfi_gated_finish(out, n, kc, g->cls, d);
    }
}

/* mdfi_dpath_gated (kernels/dpath.h) with the popcount popc. */
MDFI_GATED_INLINE int mdfi_gated_body(const mdfi_dpath_gate_geom *g, const uint64_t *s0,
                                      const uint64_t *w, const int32_t *kc, int32_t G,
                                      float *out, int n0, int n1, int32_t *list,
                                      mdfi_gated_popcount popc)
{
    const int k = mdfi_gated_list(out, n0, n1, G, list);
    mdfi_gated_counts(g, s0, w, kc, out, list, k, popc);
    return k;
}

#endif
