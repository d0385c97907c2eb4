/* Pooling loops kept with the kernels so that they are built for speed (-O2)
 * rather than size like the layers (layers/maxpool.c). */
#ifndef MDFI_KERNELS_POOL_H
#define MDFI_KERNELS_POOL_H

#include <stdint.h>

/* n outputs of a 2x2 / stride 2 max pool whose windows lie inside the image:
 * out[i] = the max of a[2i], a[2i+1], b[2i], b[2i+1], taken as Darknet does,
 * m = v > m ? v : m from -FLT_MAX in that order (so NaN is never chosen and
 * of +0 and -0 the first wins). */
void mdfi_max2x2_row(const float *a, const float *b, int n, float *out);
/* The same for a 2x2 / stride 1 pool's n whole windows: a[i], a[i+1], b[i], b[i+1]. */
void mdfi_max2x2s1_row(const float *a, const float *b, int n, float *out);
/* The same on fixed-point rows (a max of integers has no order to keep). */
void mdfi_max2x2_row_i8(const int8_t *a, const int8_t *b, int n, int8_t *out);
void mdfi_max2x2_row_i16(const int16_t *a, const int16_t *b, int n, int16_t *out);
void mdfi_max2x2_row_i32(const int32_t *a, const int32_t *b, int n, int32_t *out);
/* out[i] = max(a[i], b[i]) */
void mdfi_max_rows_i32(const int32_t *a, const int32_t *b, int n, int32_t *out);
/* A 2x2 / stride 1 pool's n whole windows: out[i] = max(a[i], a[i+1], b[i], b[i+1]). */
void mdfi_max2x2s1_row_i8(const int8_t *a, const int8_t *b, int n, int8_t *out);

#endif
