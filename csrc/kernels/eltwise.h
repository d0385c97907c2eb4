/* Element-wise float loops kept with the kernels so that they are built for
 * speed (-O3 -fno-trapping-math, the Makefile: the compiler vectorizes them)
 * rather than size like the layers and activations.c, where a [shortcut] of
 * 64 x 14 x 14 took ~4.7 ns an element (a call and a switch per element). */
#ifndef MDFI_KERNELS_ELTWISE_H
#define MDFI_KERNELS_ELTWISE_H

#include <stddef.h>

/* out[i] = alpha a[i] + beta b[i] (a + b when both are 1: the same float). */
void mdfi_eltwise_sum(float *out, const float *a, const float *b, size_t n, float alpha,
                      float beta);

/* Darknet's leaky and relu in place, with its arithmetic: (float)(.1 * x) in
 * double for leaky, x * (x > 0) for relu (so -0 for a negative x). */
void mdfi_leaky_inplace(float *x, size_t n);
void mdfi_relu_inplace(float *x, size_t n);

#endif
