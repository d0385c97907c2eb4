/* mdfi_dpath_gated (kernels/dpath.h) on the POPCNT instruction: this file is
 * built with -mpopcnt, so the builtin is one instruction a word. */
#include "kernels/dpath_gated.h"

static int popcount_insn(uint64_t x)
{
    return __builtin_popcountll(x);
}

int mdfi_dpath_gated_popcnt(const mdfi_dpath_gate_geom *g, const uint64_t *s0, const uint64_t *w,
                            const int32_t *kc, int32_t G, float *out, int n0, int n1,
                            int32_t *list)
{
    return mdfi_gated_body(g, s0, w, kc, G, out, n0, n1, list, popcount_insn);
}
