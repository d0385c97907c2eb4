/* The AVX2 requantization epilogue of the integer GEMM (mdfi_qgemm_epi),
 * used by both AVX2 variants in qgemm_avx2.c.  It runs once per output
 * element, outside the K loop, in 6 (activation, shift mode) copies of one
 * loop over 16 columns; row tails go through the same loops (see the end),
 * and the rare shift modes through the portable epilogue: 15.6 KB of code
 * became 4 KB (docs/architecture.md, the size budget). */
#include <immintrin.h>
#include <string.h>

#include "kernels/qgemm_impl.h"

#define INLINE static inline __attribute__((always_inline))

/* ---- epilogue ---------------------------------------------------------- */

/* The arithmetic of mdfi_qgemm_requant rearranged: a power of two's
 * rounding right shift as ((x >> (s-1)) + 1) >> 1 (s >= 2); leaky in 32
 * bits when no lane's product can overflow; saturation by vpackssdw /
 * vpacksswb, the values being int32.
 * A multiplier m in the files' range (1..32767) with a right shift s: the
 * rounded (x * m) >> s is floor((x * m + 2^(s-1)) / 2^s).  x is first
 * clamped to [xlo, xhi], past which the result saturates anyway, so that it
 * stays within an int32; then c * 2^s more makes the 64-bit sum
 * non-negative for a logical shift (AVX2 has no arithmetic 64-bit one), and
 * c comes off in 32 bits: 11 operations for 8 outputs, not the ~40 of
 * emulated 64-bit shifts and clamps. */

INLINE __m128i count(int n)
{
    return _mm_cvtsi32_si128(n);
}

/* 64-bit arithmetic right shift (AVX2 has only the logical one). */
INLINE __m256i sra64(__m256i x, __m128i sh)
{
    __m256i sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), x);
    return _mm256_xor_si256(_mm256_srl_epi64(_mm256_xor_si256(x, sign), sh), sign);
}

INLINE __m256i merge_lo32(__m256i even, __m256i odd)
{
    return _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xaa);
}

typedef struct {
    __m256i add, mult, lm, lmin, lomask, xlo, xhi, k64, c;
    __m128i s1, s, ls;
    int split;   /* 0 <= lm < 2^ls and lm 2^ls < 2^31: the split product below is exact */
} rowc;

/* MODE: 0 pow2 >> s >= 2, 3 mult >> s >= 1 (the others take the portable
 * epilogue). */
INLINE __m256i requant(const mdfi_qact ACT, const int MODE, const rowc *rc, __m256i x)
{
    const __m256i zero = _mm256_setzero_si256();
    x = _mm256_add_epi32(x, rc->add);
    if (ACT == MDFI_QACT_RELU) {
        x = _mm256_max_epi32(x, zero);
    } else if (ACT == MDFI_QACT_LEAKY) {
        __m256i neg = _mm256_cmpgt_epi32(zero, x);
        __m256i y;
        if (rc->split) {
            /* x = h 2^ls + l, 0 <= l < 2^ls: floor(x lm / 2^ls) = h lm +
             * (l lm >> ls), both products inside int32 for every x, so no
             * branch on the data: the one below mispredicted on the large
             * sums of 16-bit layers (their epilogue 2.8x as long) */
            const __m256i h = _mm256_mullo_epi32(_mm256_sra_epi32(x, rc->ls), rc->lm);
            const __m256i l = _mm256_mullo_epi32(_mm256_and_si256(x, rc->lomask), rc->lm);
            y = _mm256_add_epi32(h, _mm256_srl_epi32(l, rc->ls));
        } else if (_mm256_testz_si256(_mm256_cmpgt_epi32(rc->lmin, x), _mm256_set1_epi32(-1))) {
            y = _mm256_sra_epi32(_mm256_mullo_epi32(x, rc->lm), rc->ls);
        } else {
            __m256i pe = sra64(_mm256_mul_epi32(x, rc->lm), rc->ls);
            __m256i po = sra64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), rc->lm), rc->ls);
            y = merge_lo32(pe, po);
        }
        x = _mm256_blendv_epi8(x, y, neg);
    }
    if (MODE == 0) {
        const __m256i one = _mm256_set1_epi32(1);
        return _mm256_srai_epi32(_mm256_add_epi32(_mm256_sra_epi32(x, rc->s1), one), 1);
    }
    x = _mm256_min_epi32(_mm256_max_epi32(x, rc->xlo), rc->xhi);
    __m256i pe = _mm256_add_epi64(_mm256_mul_epi32(x, rc->mult), rc->k64);
    __m256i po = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), rc->mult), rc->k64);
    return _mm256_sub_epi32(merge_lo32(_mm256_srl_epi64(pe, rc->s), _mm256_srl_epi64(po, rc->s)),
                            rc->c);
}

/* nv sums of one row (nv a multiple of 16), 16 at a time, saturating. */
INLINE void row(const mdfi_qact ACT, const int MODE, const rowc *rc, const int32_t *ar, int nv,
                void *out, int out_bits)
{
    for (int j = 0; j < nv; j += 16) {
        __m256i x0 = requant(ACT, MODE, rc, _mm256_loadu_si256((const __m256i *)(ar + j)));
        __m256i x1 = requant(ACT, MODE, rc, _mm256_loadu_si256((const __m256i *)(ar + j + 8)));
        /* int16 lanes: x0[0-3] x1[0-3] | x0[4-7] x1[4-7] */
        __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(x0, x1), 0xd8);
        if (out_bits == 8)
            _mm_storeu_si128((__m128i *)((int8_t *)out + j),
                             _mm_packs_epi16(_mm256_castsi256_si128(w),
                                             _mm256_extracti128_si256(w, 1)));
        else
            _mm256_storeu_si256((__m256i *)((int16_t *)out + j), w);
    }
}

/* Only the common modes get a vector loop: 0 (a power of two, >> s >= 2) and
 * 3 (a multiplier of the files' range, >> s >= 1).  Rows in the rare ones
 * (>> 1, a left shift, a multiplier past 32767 or below 1, which only the
 * kernel tests make) take the portable epilogue: exact by definition, and 9
 * fewer copies of the loop (3.5 KB of the program). */
#define ROWS(ACT)                                                          \
    if (mode == 0)                                                         \
        row(ACT, 0, &rc, ar, nv16, o, e->out_bits);                        \
    else                                                                   \
        row(ACT, 3, &rc, ar, nv16, o, e->out_bits);

/* The epilogue for nv16 columns, a multiple of 16.  Not inlined: the tails
 * call it too, so each (activation, mode) loop exists once. */
__attribute__((noinline)) static void rows16(const mdfi_qepilogue *e, int m0,
                                             const uint32_t *corr, const int32_t *acc,
                                             int ldacc, int mv, int nv16, void *c, size_t ldc)
{
    const int hi = e->out_bits == 8 ? 127 : 32767;
    const int ls = e->leaky_shift < 0 ? 0 : e->leaky_shift > 63 ? 63 : e->leaky_shift;
    rowc rc;
    rc.lm = _mm256_set1_epi32(e->leaky_mult);
    rc.ls = count(ls);
    /* x * lm stays inside int32 for every x >= lmin: |x| * |lm| < 2^31. */
    int64_t lmabs = e->leaky_mult < 0 ? -(int64_t)e->leaky_mult : e->leaky_mult;
    rc.lmin = _mm256_set1_epi32(lmabs > 0 ? (int32_t)(INT32_MIN / lmabs + 1) : INT32_MIN);
    rc.split = ls <= 30 && e->leaky_mult >= 0 && e->leaky_mult < (1 << ls) &&
               ((int64_t)e->leaky_mult << ls) <= INT32_MAX;
    rc.lomask = _mm256_set1_epi32((int32_t)((1u << (ls <= 30 ? ls : 30)) - 1));
    for (int r = 0; r < mv; ++r) {
        const int m = m0 + r, s = e->shift[m];
        uint32_t add = mdfi_qgemm_row_offset(e, corr, m);
        rc.add = _mm256_set1_epi32((int32_t)add);
        const int64_t mu = e->mult ? e->mult[m] : 1;
        rc.mult = _mm256_set1_epi32((int32_t)mu);
        rc.s1 = count(s - 1 < 31 ? s - 1 : 31);
        const int mode = e->mult ? (s > 0 && mu >= 1 && mu <= 32767 ? 3 : 4)
                                 : s > 1 ? 0 : s == 1 ? 1 : 2;
        if (mode == 3) {
            /* |x * m| < 2^46: past s = 47 every result is 0, as x = 0 gives */
            const int sh = s > 47 ? 47 : s;
            const int64_t half = (int64_t)1 << (sh - 1), top = (2 * (int64_t)hi + 1) * half;
            const int64_t bot = (-2 * (int64_t)hi - 3) * half;   /* (2 lo - 1) 2^(s-1) */
            int64_t xh = (top + mu - 1) / mu, xl = -(-bot / mu) - 1;   /* ceil, ceil - 1 */
            if (s > 47)
                xh = xl = 0;
            const int64_t k = hi + 3 + (mu >> sh);   /* result >= lo - 1 - (m >> s) */
            rc.xhi = _mm256_set1_epi32((int32_t)(xh > INT32_MAX ? INT32_MAX : xh));
            rc.xlo = _mm256_set1_epi32((int32_t)(xl < INT32_MIN ? INT32_MIN : xl));
            rc.k64 = _mm256_set1_epi64x(half + (k << sh));
            rc.c = _mm256_set1_epi32((int32_t)k);
            rc.s = count(sh);
        }
        const int32_t *ar = acc + (size_t)r * ldacc;
        void *o = (char *)c + (size_t)r * ldc * (size_t)(e->out_bits / 8);
        if (mode != 0 && mode != 3)
            mdfi_qgemm_epi_scalar(e, m, corr, ar, ldacc, 1, nv16, o, ldc);
        else if (e->act == MDFI_QACT_LEAKY)
            ROWS(MDFI_QACT_LEAKY)
        else if (e->act == MDFI_QACT_RELU)
            ROWS(MDFI_QACT_RELU)
        else
            ROWS(MDFI_QACT_LINEAR)
    }
}

/* A row's last nv % 16 sums go through rows16 by way of 16-wide buffers:
 * -O3 and -O2 otherwise build a second copy of every loop for the tail (as
 * big as the first: 8 KB of the program). */
void mdfi_qgemm_epi_avx2(const mdfi_qepilogue *e, int m0, const uint32_t *corr,
                         const int32_t *acc, int ldacc, int mv, int nv, void *c, size_t ldc)
{
    const int full = nv & ~15, tail = nv - full;
    const size_t eb = (size_t)(e->out_bits / 8);
    if (full)
        rows16(e, m0, corr, acc, ldacc, mv, full, c, ldc);
    for (int r = 0; tail && r < mv; ++r) {
        int32_t tin[16];
        int16_t tout[16];
        memset(tin, 0, sizeof tin);
        memcpy(tin, acc + (size_t)r * ldacc + full, (size_t)tail * sizeof *tin);
        rows16(e, m0 + r, corr, tin, 16, 1, 16, tout, 16);
        memcpy((char *)c + ((size_t)r * ldc + (size_t)full) * eb, tout, (size_t)tail * eb);
    }
}

/* out_bits 32 with pairs (a kernel's epi_pairs): the sums with the row's
 * offset added, the larger of each column pair kept, 8 pairs a step (the
 * SSE2 form's 4 took 3 % of yolov3-tiny W8A8, layer 0's 18 %). */
void mdfi_qgemm_epi_pairs_avx2(const mdfi_qepilogue *e, int m0, const uint32_t *corr,
                               const int32_t *acc, int ldacc, int mv, int nv, void *c,
                               size_t ldc)
{
    for (int r = 0; r < mv; ++r) {
        const uint32_t add = mdfi_qgemm_row_offset(e, corr, m0 + r);
        const __m256i va = _mm256_set1_epi32((int32_t)add);
        const int32_t *ar = acc + (size_t)r * ldacc;
        int32_t *o = (int32_t *)c + (size_t)r * ldc;
        int j = 0;
        for (; 2 * j + 16 <= nv; j += 8) {
            const __m256 x0 = _mm256_castsi256_ps(
                _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(ar + 2 * j)), va));
            const __m256 x1 = _mm256_castsi256_ps(
                _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(ar + 2 * j + 8)), va));
            /* pairs (0 1 4 5 | 2 3 6 7) of x0 then x1, put in order */
            const __m256i ev = _mm256_castps_si256(_mm256_shuffle_ps(x0, x1, 0x88));
            const __m256i od = _mm256_castps_si256(_mm256_shuffle_ps(x0, x1, 0xdd));
            const __m256i mx = _mm256_max_epi32(ev, od);
            _mm256_storeu_si256((__m256i *)(o + j), _mm256_permute4x64_epi64(mx, 0xd8));
        }
        for (; 2 * j < nv; ++j) {
            const int32_t x = (int32_t)((uint32_t)ar[2 * j] + add);
            const int32_t y = (int32_t)((uint32_t)ar[2 * j + 1] + add);
            o[j] = x > y ? x : y;
        }
    }
}
