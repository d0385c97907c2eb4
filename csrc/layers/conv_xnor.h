/* [convolutional] with xnor=1: binary weights and bit-packed activations
 * (Darknet's xnor semantics, plus the multi-bit activation keys abits/astep),
 * and [maxpool] on bit-packed data.  See docs/binary.md. */
#ifndef MDFI_LAYERS_CONV_XNOR_H
#define MDFI_LAYERS_CONV_XNOR_H

#include "layers/layer.h"

extern const mdfi_layer_ops mdfi_conv_xnor_ops;
/* A [maxpool] whose input and output are bit tensors; the binary layers
 * switch a maxpool to it at prepare time when every reader is binary. */
extern const mdfi_layer_ops mdfi_maxpool_bits_ops;

/* Whether a [convolutional] section belongs to the binary layer: xnor set
 * to anything but 0, or an activation-bit key (abits, astep) present. */
int mdfi_conv_xnor_selected(mdfi_cfg_section *s);

#endif
