/* Section name -> layer table.  Adding a layer type is one line here. */
#include <string.h>

#include "layers/layer.h"

extern const mdfi_layer_ops mdfi_connected_ops;
extern const mdfi_layer_ops mdfi_avgpool_ops;
extern const mdfi_layer_ops mdfi_route_ops;
extern const mdfi_layer_ops mdfi_shortcut_ops;
extern const mdfi_layer_ops mdfi_upsample_ops;
extern const mdfi_layer_ops mdfi_yolo_ops;
extern const mdfi_layer_ops mdfi_dropout_ops;
extern const mdfi_layer_ops mdfi_softmax_ops;

static const struct {
    const char *section;
    const mdfi_layer_ops *ops;
} registry[] = {
    {"convolutional", &mdfi_convolutional_ops},
    {"conv", &mdfi_convolutional_ops},
    {"connected", &mdfi_connected_ops},
    {"maxpool", &mdfi_maxpool_ops},
    {"max", &mdfi_maxpool_ops},
    {"avgpool", &mdfi_avgpool_ops},
    {"avg", &mdfi_avgpool_ops},
    {"route", &mdfi_route_ops},
    {"shortcut", &mdfi_shortcut_ops},
    {"upsample", &mdfi_upsample_ops},
    {"yolo", &mdfi_yolo_ops},
    {"dropout", &mdfi_dropout_ops},
    {"softmax", &mdfi_softmax_ops},
    {"soft", &mdfi_softmax_ops},
};

const mdfi_layer_ops *mdfi_layer_find(const char *section)
{
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; ++i)
        if (!strcmp(registry[i].section, section))
            return registry[i].ops;
    return NULL;
}
