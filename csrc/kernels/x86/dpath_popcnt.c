/* mdfi_dpath_gated (kernels/dpath.h) on the POPCNT instruction: this file is
 * built with -mpopcnt, so the builtin is one instruction a word.  The AVX2
 * form counts with mdfi_dpath_gated_counts_popcnt where its vectors do not
 * fit the window. */
#include "kernels/dpath_gated.h"

static int popcount_insn(uint64_t x)
{
    return __builtin_popcountll(x);
}

__attribute__((noinline)) void mdfi_dpath_gated_counts_popcnt(
    const mdfi_dpath_gate_geom *g, const uint64_t *s0, const uint64_t *w, const int32_t *kc,
    float *out, const int32_t *list, int k)
{
    mdfi_gated_counts(g, s0, w, kc, out, list, k, popcount_insn);
}

int mdfi_dpath_gated_popcnt(const mdfi_dpath_gate_geom *g, const uint64_t *s0, const uint64_t *w,
                            const int32_t *kc, int32_t G, float *out, int n0, int n1,
                            int32_t *list)
{
    const int k = mdfi_gated_list(out, n0, n1, G, list);
    mdfi_dpath_gated_counts_popcnt(g, s0, w, kc, out, list, k);
    return k;
}
