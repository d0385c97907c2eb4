#include "kernels/activations.h"
#include "kernels/eltwise.h"

#include <math.h>
#include <string.h>

/* char arrays, not pointers: a table of pointers is relocated data (the size budget) */
static const char names[][9] = {
    "logistic", "relu", "relie", "linear", "ramp", "tanh", "plse",
    "leaky", "elu", "loggy", "stair", "hardtan", "lhtan", "selu", "relu6", "swish", "mish"};

int mdfi_activation_parse(const char *name, mdfi_activation *a)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i)
        if (!strcmp(names[i], name)) {
            *a = (mdfi_activation)i;
            return 0;
        }
    return -1;
}

const char *mdfi_activation_name(mdfi_activation a)
{
    return names[a];
}

static float stair(float x)
{
    int n = (int)floor(x);
    if (n % 2 == 0)
        return (float)floor(x / 2.);
    return (float)((x - n) + floor(x / 2.));
}

float mdfi_activate1(float x, mdfi_activation a)
{
    switch (a) {
    case MDFI_ACT_LOGISTIC: return (float)(1. / (1. + exp(-x)));
    case MDFI_ACT_RELU: return x * (x > 0);
    case MDFI_ACT_RELIE: return (x > 0) ? x : (float)(.01 * x);
    case MDFI_ACT_LINEAR: return x;
    case MDFI_ACT_RAMP: return (float)(x * (x > 0) + .1 * x);
    case MDFI_ACT_TANH: return (float)((exp(2 * x) - 1) / (exp(2 * x) + 1));
    case MDFI_ACT_PLSE:
        if (x < -4) return (float)(.01 * (x + 4));
        if (x > 4) return (float)(.01 * (x - 4) + 1);
        return (float)(.125 * x + .5);
    case MDFI_ACT_LEAKY: return (x > 0) ? x : (float)(.1 * x);
    case MDFI_ACT_ELU: return (float)((x >= 0) * x + (x < 0) * (exp(x) - 1));
    case MDFI_ACT_LOGGY: return (float)(2. / (1. + exp(-x)) - 1);
    case MDFI_ACT_STAIR: return stair(x);
    case MDFI_ACT_HARDTAN: return x < -1 ? -1.f : (x > 1 ? 1.f : x);
    case MDFI_ACT_LHTAN:
        if (x < 0) return (float)(.001 * x);
        if (x > 1) return (float)(.001 * (x - 1) + 1);
        return x;
    case MDFI_ACT_SELU:
        return (float)((x >= 0) * 1.0507 * x + (x < 0) * 1.0507 * 1.6732 * (exp(x) - 1));
    case MDFI_ACT_RELU6: return x < 0 ? 0.f : (x > 6 ? 6.f : x);
    case MDFI_ACT_SWISH: return x * (1.f / (1.f + expf(-x)));
    case MDFI_ACT_MISH: {
        /* softplus with AlexeyAB's threshold 20, then its tanh 2/(1+e^-2y)-1 */
        float sp = x > 20 ? x : (x < -20 ? expf(x) : logf(expf(x) + 1));
        return x * (2 / (1 + expf(-2 * sp)) - 1);
    }
    }
    return x;
}

static int vector_form(mdfi_activation a)
{
    return a == MDFI_ACT_LOGISTIC || a == MDFI_ACT_SWISH || a == MDFI_ACT_MISH;
}

mdfi_activate_fn mdfi_activate_for(mdfi_isa isa, mdfi_activation a)
{
#ifdef MDFI_HAVE_AVX2
    if (vector_form(a) && isa != MDFI_ISA_REF && mdfi_isa_available(MDFI_ISA_AVX2))
        return mdfi_activate_avx2;
#endif
#ifdef MDFI_HAVE_NEON
    if (vector_form(a) && isa == MDFI_ISA_NEON && mdfi_isa_available(MDFI_ISA_NEON))
        return mdfi_activate_neon;
#endif
    (void)isa;
    (void)a;
    return mdfi_activate;
}

void mdfi_activate(float *x, size_t n, mdfi_activation a)
{
    if (a == MDFI_ACT_LINEAR)
        return;
    if (a == MDFI_ACT_LEAKY) {   /* the common ones: kernels/eltwise.c, vectorized */
        mdfi_leaky_inplace(x, n);
        return;
    }
    if (a == MDFI_ACT_RELU) {
        mdfi_relu_inplace(x, n);
        return;
    }
    for (size_t i = 0; i < n; ++i)
        x[i] = mdfi_activate1(x[i], a);
}
