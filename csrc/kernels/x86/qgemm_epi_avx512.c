/* The AVX-512BW requantization epilogue of the integer GEMM
 * (mdfi_qgemm_epi), shared by the AVX-512 and AVX-512 VNNI variants.
 *
 * Its own file, as the AVX2 one (qgemm_epi_avx2.c), so that the micro-kernel
 * files hold micro-kernels only.  The loops of the common shift modes and
 * their -O3 are unchanged from when it sat beside them: no AVX-512 machine
 * was at hand to time a change to them. */
#include <immintrin.h>
#include <string.h>

#include "kernels/qgemm_impl.h"

#define INLINE static inline __attribute__((always_inline))

/* ---- epilogue ---------------------------------------------------------- */

/* The arithmetic of mdfi_qgemm_requant, rearranged to save instructions
 * (512-bit integer work issues on two ports only) with identical results:
 *  - rounding right shift by s >= 2 as ((x >> (s-1)) + 1) >> 1, which
 *    cannot overflow (|x >> (s-1)| <= 2^30); s = 1 as (x >> 1) + (x & 1);
 *    in 64 bits (|x * mult| <= 2^62) the first form serves every s >= 1;
 *  - integer leaky in 32 bits (vpmulld) when no negative lane's product can
 *    overflow, else in 64 bits;
 *  - saturation by the saturating packs (vpackssdw, vpacksswb, vpmovs*)
 *    rather than a clamp, wherever the value is still an int32. */

INLINE __m128i count(int n)
{
    return _mm_cvtsi32_si128(n);
}

/* Low 32 bits of ((int64)x * m) >> sh in every lane (m: a broadcast). */
INLINE __m512i mul_sra64(__m512i x, __m512i m, __m128i sh)
{
    __m512i pe = _mm512_sra_epi64(_mm512_mul_epi32(x, m), sh);
    __m512i po = _mm512_sra_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), m), sh);
    return _mm512_mask_blend_epi32(0xaaaa, pe, _mm512_slli_epi64(po, 32));
}

typedef struct {
    __m512i add, mult, lo64, hi64, lm, lmin;
    __m128i s1, ls;
} rowc;

/* Rounding right shift of 64-bit lanes by s >= 1 (s1 = s - 1). */
INLINE __m512i rsr64(__m512i p, __m128i s1)
{
    const __m512i one = _mm512_set1_epi64(1);
    return _mm512_srai_epi64(_mm512_add_epi64(_mm512_sra_epi64(p, s1), one), 1);
}

/* MODE: 0 pow2 right shift s >= 2, 3 mult + right shift (the numbering of
 * mdfi_qgemm_epi_avx512's modes; 1, 2 and 4 go to the portable epilogue).
 * The result is an int32 for the saturating narrowing (mode 3: already in
 * the output range). */
INLINE __m512i requant(const mdfi_qact ACT, const int MODE, const rowc *rc, __m512i x)
{
    x = _mm512_add_epi32(x, rc->add);
    if (ACT == MDFI_QACT_RELU) {
        x = _mm512_max_epi32(x, _mm512_setzero_si512());
    } else if (ACT == MDFI_QACT_LEAKY) {
        __mmask16 neg = _mm512_cmplt_epi32_mask(x, _mm512_setzero_si512());
        if (!_mm512_cmplt_epi32_mask(x, rc->lmin))   /* (shifts past 31 fill the sign) */
            x = _mm512_mask_sra_epi32(x, neg, _mm512_mullo_epi32(x, rc->lm), rc->ls);
        else
            x = _mm512_mask_mov_epi32(x, neg, mul_sra64(x, rc->lm, rc->ls));
    }
    if (MODE == 0) {
        const __m512i one = _mm512_set1_epi32(1);
        return _mm512_srai_epi32(_mm512_add_epi32(_mm512_sra_epi32(x, rc->s1), one), 1);
    }
    __m512i pe = _mm512_mul_epi32(x, rc->mult);
    __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(x, 32), rc->mult);
    pe = rsr64(pe, rc->s1);
    po = rsr64(po, rc->s1);
    pe = _mm512_min_epi64(_mm512_max_epi64(pe, rc->lo64), rc->hi64);
    po = _mm512_min_epi64(_mm512_max_epi64(po, rc->lo64), rc->hi64);
    return _mm512_mask_blend_epi32(0xaaaa, pe, _mm512_slli_epi64(po, 32));
}

/* One row of nv sums to int8 or int16, saturating. */
INLINE void row(const mdfi_qact ACT, const int MODE, const rowc *rc, const int32_t *ar, int nv,
                void *out, int out_bits)
{
    const __mmask16 tail = (__mmask16)((1u << (nv % 16)) - 1);
    const __m512i order = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
    int j = 0;
    if (out_bits == 8) {
        int8_t *o = out;
        for (; j + 32 <= nv; j += 32) {
            __m512i x0 = requant(ACT, MODE, rc, _mm512_loadu_si512(ar + j));
            __m512i x1 = requant(ACT, MODE, rc, _mm512_loadu_si512(ar + j + 16));
            /* 128-bit lane i: x0[4i..4i+3] x1[4i..4i+3] as int16 */
            __m512i w = _mm512_packs_epi32(x0, x1);
            __m256i v = _mm256_packs_epi16(_mm512_castsi512_si256(w),
                                           _mm512_extracti64x4_epi64(w, 1));
            /* dwords: x0[0-3] x1[0-3] x0[8-11] x1[8-11] | x0[4-7] x1[4-7] x0[12-15] x1[12-15] */
            v = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 2, 6, 1, 5, 3, 7));
            _mm256_storeu_si256((__m256i *)(o + j), v);
        }
        for (; j + 16 <= nv; j += 16)
            _mm_storeu_si128((__m128i *)(o + j),
                             _mm512_cvtsepi32_epi8(requant(ACT, MODE, rc, _mm512_loadu_si512(ar + j))));
        if (tail)
            _mm512_mask_cvtsepi32_storeu_epi8(
                o + j, tail, requant(ACT, MODE, rc, _mm512_maskz_loadu_epi32(tail, ar + j)));
    } else {
        int16_t *o = out;
        for (; j + 32 <= nv; j += 32) {
            __m512i x0 = requant(ACT, MODE, rc, _mm512_loadu_si512(ar + j));
            __m512i x1 = requant(ACT, MODE, rc, _mm512_loadu_si512(ar + j + 16));
            /* qwords: x0[0-3] x1[0-3] x0[4-7] x1[4-7] ... */
            __m512i w = _mm512_permutexvar_epi64(order, _mm512_packs_epi32(x0, x1));
            _mm512_storeu_si512(o + j, w);
        }
        for (; j + 16 <= nv; j += 16)
            _mm256_storeu_si256((__m256i *)(o + j),
                                _mm512_cvtsepi32_epi16(requant(ACT, MODE, rc, _mm512_loadu_si512(ar + j))));
        if (tail)
            _mm512_mask_cvtsepi32_storeu_epi16(
                o + j, tail, requant(ACT, MODE, rc, _mm512_maskz_loadu_epi32(tail, ar + j)));
    }
}

/* Only the common shift modes have vector loops (a power of two with a
 * right shift of 2 or more, a multiplier with a right shift); rows in the
 * rare ones (a shift of 1, a left shift) take the portable epilogue, as in
 * qgemm_epi_avx2.c: 9 of the 15 always-inlined copies fewer, about 12 KB of
 * the program (docs/architecture.md, the size budget). */
#define ROWS(ACT)                                                          \
    if (mode == 0)                                                         \
        row(ACT, 0, &rc, ar, nv, o, e->out_bits);                          \
    else                                                                   \
        row(ACT, 3, &rc, ar, nv, o, e->out_bits);

void mdfi_qgemm_epi_avx512(const mdfi_qepilogue *e, int m0, const uint32_t *corr,
                           const int32_t *acc, int ldacc, int mv, int nv, void *c, size_t ldc)
{
    const int hi = e->out_bits == 8 ? 127 : 32767;
    const int ls = e->leaky_shift < 0 ? 0 : e->leaky_shift > 63 ? 63 : e->leaky_shift;
    rowc rc;
    rc.lo64 = _mm512_set1_epi64(-hi - 1);
    rc.hi64 = _mm512_set1_epi64(hi);
    rc.lm = _mm512_set1_epi32(e->leaky_mult);
    rc.ls = count(ls);
    /* x * lm stays inside int32 for every x >= lmin: |x| * |lm| < 2^31. */
    int64_t lmabs = e->leaky_mult < 0 ? -(int64_t)e->leaky_mult : e->leaky_mult;
    rc.lmin = _mm512_set1_epi32(lmabs > 0 ? (int32_t)(INT32_MIN / lmabs + 1) : INT32_MIN);
    for (int r = 0; r < mv; ++r) {
        const int m = m0 + r, s = e->shift[m];
        uint32_t add = (e->bias ? (uint32_t)e->bias[m] : 0u) - (corr ? corr[m] : 0u);
        rc.add = _mm512_set1_epi32((int32_t)add);
        rc.mult = _mm512_set1_epi32(e->mult ? e->mult[m] : 1);
        rc.s1 = count(s - 1 < (e->mult ? 63 : 31) ? s - 1 : (e->mult ? 63 : 31));
        const int mode = e->mult ? (s > 0 ? 3 : 4) : s > 1 ? 0 : s == 1 ? 1 : 2;
        const int32_t *ar = acc + (size_t)r * ldacc;
        void *o = (char *)c + (size_t)r * ldc * (e->out_bits / 8);
        if (mode != 0 && mode != 3)
            mdfi_qgemm_epi_scalar(e, m, corr, ar, ldacc, 1, nv, o, ldc);
        else if (e->act == MDFI_QACT_LEAKY)
            ROWS(MDFI_QACT_LEAKY)
        else if (e->act == MDFI_QACT_RELU)
            ROWS(MDFI_QACT_RELU)
        else
            ROWS(MDFI_QACT_LINEAR)
    }
}
