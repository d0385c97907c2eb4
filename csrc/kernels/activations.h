/* Darknet's activation functions, with Darknet's exact arithmetic (several
 * are computed in double there, e.g. logistic = 1./(1.+exp(-x))). */
#ifndef MDFI_KERNELS_ACTIVATIONS_H
#define MDFI_KERNELS_ACTIVATIONS_H

#include <stddef.h>

#include "kernels/cpu.h"

typedef enum {
    MDFI_ACT_LOGISTIC, MDFI_ACT_RELU, MDFI_ACT_RELIE, MDFI_ACT_LINEAR, MDFI_ACT_RAMP,
    MDFI_ACT_TANH, MDFI_ACT_PLSE, MDFI_ACT_LEAKY, MDFI_ACT_ELU, MDFI_ACT_LOGGY,
    MDFI_ACT_STAIR, MDFI_ACT_HARDTAN, MDFI_ACT_LHTAN, MDFI_ACT_SELU,
    /* AlexeyAB's only, in its float arithmetic */
    MDFI_ACT_RELU6, MDFI_ACT_SWISH, MDFI_ACT_MISH
} mdfi_activation;

/* Returns 0 and sets *a, or -1 for an unknown name. */
int mdfi_activation_parse(const char *name, mdfi_activation *a);
const char *mdfi_activation_name(mdfi_activation a);
void mdfi_activate(float *x, size_t n, mdfi_activation a);
float mdfi_activate1(float x, mdfi_activation a);

/* The loop for activation a on kernel path isa: mdfi_activate, or a vector
 * form (logistic, swish and mish on AVX2 and NEON: kernels/x86/act_avx2.c,
 * kernels/arm/act_neon.c, within a few ulps of the definition, where
 * mdfi_activate's logistic is Darknet's double arithmetic). */
typedef void (*mdfi_activate_fn)(float *x, size_t n, mdfi_activation a);
mdfi_activate_fn mdfi_activate_for(mdfi_isa isa, mdfi_activation a);
void mdfi_activate_avx2(float *x, size_t n, mdfi_activation a);
void mdfi_activate_neon(float *x, size_t n, mdfi_activation a);

#endif
