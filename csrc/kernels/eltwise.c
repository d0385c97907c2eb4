#include "kernels/eltwise.h"

void mdfi_eltwise_sum(float *out, const float *a, const float *b, size_t n, float alpha,
                      float beta)
{
    if (alpha == 1.f && beta == 1.f) {
        for (size_t i = 0; i < n; ++i)
            out[i] = a[i] + b[i];
        return;
    }
    for (size_t i = 0; i < n; ++i)
        out[i] = alpha * a[i] + beta * b[i];
}

/* (float)(.1 * (double)x) is the correctly rounded x / 10 for every
 * negative float (kernels/sgemm_impl.h), and a float division vectorizes. */
void mdfi_leaky_inplace(float *x, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        float v = x[i], t = v / 10.f;
        x[i] = v > 0 ? v : t;
    }
}

void mdfi_relu_inplace(float *x, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        x[i] = x[i] * (x[i] > 0);
}
