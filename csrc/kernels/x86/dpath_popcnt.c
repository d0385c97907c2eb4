/* mdfi_dpath_popdot (kernels/dpath.h) on the POPCNT instruction: this file
 * is built with -mpopcnt, so the builtin is one instruction a word. */
#include "kernels/dpath.h"

int mdfi_dpath_popdot_popcnt(const uint64_t *a, const uint64_t *b, int n)
{
    uint64_t s0 = 0, s1 = 0;
    int i = 0;
    for (; i + 2 <= n; i += 2) {   /* two chains: the adds do not wait on each other */
        s0 += (uint64_t)__builtin_popcountll(a[i] ^ b[i]);
        s1 += (uint64_t)__builtin_popcountll(a[i + 1] ^ b[i + 1]);
    }
    if (i < n)
        s0 += (uint64_t)__builtin_popcountll(a[i] ^ b[i]);
    return (int)(s0 + s1);
}
