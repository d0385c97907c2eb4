/* [exit] spec (l->spec of a layer of kind MDFI_KIND_EXIT): an early exit's
 * branch, thresholds and predictors (docs/early-exit.md).  The network reads
 * it to wire the branch and to decide, per input, whether the branch runs and
 * whether its exit fires; it sets `run` and the thresholds between forwards. */
#ifndef MDFI_LAYERS_EXIT_H
#define MDFI_LAYERS_EXIT_H

#include "layers/layer.h"

enum { MDFI_PRED_ENTROPY = 0, MDFI_PRED_EXIT = 1, MDFI_PREDICTORS = 2 };

typedef struct {
    int from;                  /* the branch point (absolute layer index) */
    int layers;                /* the branch: layers index+1 .. index+layers */
    float threshold;           /* exit when the branch's normalized entropy < threshold */
    float gate[MDFI_PREDICTORS];   /* entropy: run if value < gate; exit: if value > gate */
    int has[MDFI_PREDICTORS];
    int pool, hidden;          /* predictor input: pool x pool per channel; hidden units */
    int features;              /* D = channels * pool * pool */
    double predictor_macs;     /* one predictor's multiply-accumulates (pooling included) */
    unsigned run;              /* predictors forward computes: bit k = predictor k */
} mdfi_exit_spec;

/* Normalized entropy -sum p ln p / ln n of n probabilities, in [0, 1]. */
float mdfi_exit_entropy(const float *p, int n);

#endif
