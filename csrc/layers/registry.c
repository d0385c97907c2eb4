/* The layer types: one row each.  A row is the type: the section names it
 * answers to, its kind flags, its parse, and its variant for each numeric
 * path (NULL: the type has no such form).  Adding a layer type is one file
 * and one row here (docs/architecture.md). */
#include <stdio.h>
#include <string.h>

#include "layers/layer.h"

typedef mdfi_status parse_fn(mdfi_layer *l, mdfi_cfg_section *s, const mdfi_parse_ctx *ctx,
                             mdfi_errbuf *err);
extern parse_fn mdfi_convolutional_parse, mdfi_connected_parse, mdfi_maxpool_parse,
    mdfi_avgpool_parse, mdfi_route_parse, mdfi_shortcut_parse, mdfi_upsample_parse,
    mdfi_yolo_parse, mdfi_dropout_parse, mdfi_softmax_parse, mdfi_scale_channels_parse, mdfi_exit_parse,
    mdfi_dualpath_parse, mdfi_fracconv_parse, mdfi_cost_parse, mdfi_reorg_parse,
    mdfi_reorg3d_parse, mdfi_region_parse, mdfi_sam_parse, mdfi_crop_parse,
    mdfi_local_avgpool_parse, mdfi_contrastive_parse, mdfi_gaussian_yolo_parse,
    mdfi_local_parse, mdfi_detection_parse;
extern const mdfi_layer_variant mdfi_convolutional_float, mdfi_convolutional_binary,
    mdfi_gemm_fixed, mdfi_connected_float, mdfi_maxpool_float, mdfi_maxpool_fixed,
    mdfi_maxpool_bits, mdfi_avgpool_float, mdfi_avgpool_fixed, mdfi_route_float,
    mdfi_route_fixed, mdfi_shortcut_float, mdfi_shortcut_fixed, mdfi_upsample_float,
    mdfi_upsample_fixed, mdfi_yolo_float, mdfi_yolo_fixed, mdfi_dropout_alias,
    mdfi_softmax_float, mdfi_softmax_fixed, mdfi_scale_channels_float, mdfi_scale_channels_fixed,
    mdfi_exit_float, mdfi_exit_fixed, mdfi_dualpath_binary, mdfi_fracconv_binary,
    mdfi_reorg_float, mdfi_region_float, mdfi_crop_float, mdfi_local_avgpool_float,
    mdfi_contrastive_float, mdfi_local_float;

#define K(x) MDFI_KIND_##x
static const mdfi_layer_type registry[] = {
    /* name            alias        kind               parse                       spec
     *                 float                      fixed                 binary */
    {"convolutional", "conv", K(GEMM) | K(CONV), mdfi_convolutional_parse, NULL,
     {&mdfi_convolutional_float, &mdfi_gemm_fixed, &mdfi_convolutional_binary}},
    {"connected", "conn", K(GEMM), mdfi_connected_parse, NULL,
     {&mdfi_connected_float, &mdfi_gemm_fixed, NULL}},
    {"maxpool", "max", K(MAXPOOL), mdfi_maxpool_parse, NULL,
     {&mdfi_maxpool_float, &mdfi_maxpool_fixed, &mdfi_maxpool_bits}},
    {"avgpool", "avg", 0, mdfi_avgpool_parse, NULL,
     {&mdfi_avgpool_float, &mdfi_avgpool_fixed, NULL}},
    {"route", NULL, 0, mdfi_route_parse, NULL, {&mdfi_route_float, &mdfi_route_fixed, NULL}},
    {"shortcut", NULL, 0, mdfi_shortcut_parse, NULL,
     {&mdfi_shortcut_float, &mdfi_shortcut_fixed, NULL}},
    {"upsample", NULL, 0, mdfi_upsample_parse, NULL,
     {&mdfi_upsample_float, &mdfi_upsample_fixed, NULL}},
    {"yolo", NULL, K(HEAD) | K(YOLO), mdfi_yolo_parse, NULL,
     {&mdfi_yolo_float, &mdfi_yolo_fixed, NULL}},
    /* [yolo] with a sigma per coordinate (layers/yolo.c), float only */
    {"Gaussian_yolo", NULL, K(HEAD) | K(YOLO), mdfi_gaussian_yolo_parse, NULL,
     {&mdfi_yolo_float, NULL, NULL}},
    {"region", NULL, K(HEAD) | K(YOLO), mdfi_region_parse, NULL,
     {&mdfi_region_float, NULL, NULL}},
    /* YOLOv1's head (layers/region.c): decoded by detect/yolo.c */
    {"detection", NULL, K(HEAD) | K(YOLO), mdfi_detection_parse, NULL,
     {&mdfi_region_float, NULL, NULL}},
    /* YOLOv1's locally connected layer: unshared filters per position */
    {"local", NULL, 0, mdfi_local_parse, NULL, {&mdfi_local_float, NULL, NULL}},
    {"dropout", NULL, K(ALIAS), mdfi_dropout_parse, NULL,
     {&mdfi_dropout_alias, &mdfi_dropout_alias, NULL}},
    /* space-to-depth as each Darknet calls it (layers/reorg.c) */
    {"reorg", NULL, 0, mdfi_reorg_parse, NULL, {&mdfi_reorg_float, NULL, NULL}},
    {"reorg3d", NULL, 0, mdfi_reorg3d_parse, NULL, {&mdfi_reorg_float, NULL, NULL}},
    {"crop", NULL, 0, mdfi_crop_parse, NULL, {&mdfi_crop_float, NULL, NULL}},
    {"local_avgpool", NULL, 0, mdfi_local_avgpool_parse, NULL,
     {&mdfi_local_avgpool_float, NULL, NULL}},
    /* a training loss whose inference output is zeros */
    {"contrastive", NULL, 0, mdfi_contrastive_parse, NULL,
     {&mdfi_contrastive_float, NULL, NULL}},
    /* a training loss: passes its input on, as [dropout] */
    {"cost", NULL, K(ALIAS), mdfi_cost_parse, NULL,
     {&mdfi_dropout_alias, &mdfi_dropout_alias, NULL}},
    {"softmax", "soft", K(HEAD), mdfi_softmax_parse, NULL,
     {&mdfi_softmax_float, &mdfi_softmax_fixed, NULL}},
    {"scale_channels", NULL, 0, mdfi_scale_channels_parse, NULL,
     {&mdfi_scale_channels_float, &mdfi_scale_channels_fixed, NULL}},
    /* spatial attention: scale_channels with a factor per element */
    {"sam", NULL, 0, mdfi_sam_parse, NULL,
     {&mdfi_scale_channels_float, &mdfi_scale_channels_fixed, NULL}},
    {"exit", NULL, K(HEAD) | K(EXIT), mdfi_exit_parse, NULL,
     {&mdfi_exit_float, &mdfi_exit_fixed, NULL}},
    /* binary only (docs/dualpath.md); not CONV: two inputs, never fused */
    {"dualpath", NULL, 0, mdfi_dualpath_parse, NULL, {NULL, NULL, &mdfi_dualpath_binary}},
    /* binary only (docs/wsfracbnn.md); not CONV, as dualpath: never fused */
    {"fracconv", NULL, 0, mdfi_fracconv_parse, NULL, {NULL, NULL, &mdfi_fracconv_binary}},
};
#undef K

#define N_TYPES (sizeof registry / sizeof registry[0])

const mdfi_layer_type *mdfi_layer_type_find(const char *section)
{
    for (size_t i = 0; i < N_TYPES; ++i) {
        if (!strcmp(registry[i].name, section))
            return &registry[i];
        if (registry[i].alias && !strcmp(registry[i].alias, section))
            return &registry[i];
    }
    return NULL;
}

/* Types a user sets a path's keys on: heads and aliases follow their input. */
static int listed(const mdfi_layer_type *t, mdfi_path path)
{
    return t->path[path] && !(t->kind & (MDFI_KIND_ALIAS | MDFI_KIND_HEAD));
}

void mdfi_layer_types_with(mdfi_path path, char *buf, size_t len)
{
    size_t total = 0, n = 0, at = 0;
    for (size_t i = 0; i < N_TYPES; ++i)
        total += listed(&registry[i], path);
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < N_TYPES && len; ++i) {
        if (!listed(&registry[i], path))
            continue;
        ++n;
        int w = snprintf(buf + at, len - at, "%s%s", n == 1 ? "" : n == total ? " and " : ", ",
                         registry[i].name);
        if (w < 0 || (size_t)w >= len - at)
            break;
        at += (size_t)w;
    }
}

int mdfi_layer_has_kind(const mdfi_layer *l, unsigned kind)
{
    return l->type && (l->type->kind & kind) != 0;
}
