/* mdfi info: a Darknet-style layer table. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char *short_type(const char *t)
{
    if (!strcmp(t, "convolutional")) return "conv";
    if (!strcmp(t, "maxpool")) return "max";
    if (!strcmp(t, "avgpool")) return "avg";
    if (!strcmp(t, "connected")) return "connected";
    return t;
}

int cmd_info(int argc, char **argv)
{
    cli_args a;
    if (cli_parse(argc, argv, &a))
        return 2;
    if (a.n_pos < 1 || a.n_pos > 2) {
        fprintf(stderr, "usage: mdfi info CFG [WEIGHTS]\n");
        return 2;
    }
    mdfi_net *net = cli_open_net(a.pos[0], a.n_pos > 1 ? a.pos[1] : NULL, &a);
    if (!net)
        return 1;
    double total = 0, btotal = 0;
    printf("layer     filters    size              input                output\n");
    for (int i = 0; i < mdfi_net_num_layers(net); ++i) {
        mdfi_layer_info li;
        mdfi_net_layer_info(net, i, &li);
        char geo[32] = "";
        if (li.size)
            snprintf(geo, sizeof geo, "%2d x%2d / %2d", li.size, li.size, li.stride);
        else if (li.stride)
            snprintf(geo, sizeof geo, "      x%2d", li.stride);
        printf("%5d %-10s", i, short_type(li.type));
        if (li.filters)
            printf("%5d", li.filters);
        else
            printf("     ");
        printf("  %-12s %4d x%4d x%4d   ->  %4d x%4d x%4d", geo, li.in_w, li.in_h, li.in_c,
               li.out_w, li.out_h, li.out_c);
        if (li.flops > 0 || li.bops > 0)   /* a gated layer's BOPs: its first plane */
            printf("  %7.3f BFLOPs %7.3f BBOPs%s", li.flops / 1e9, li.bops / 1e9,
                   li.gate ? "+g" : "  ");
        if (*li.activation)
            printf("  %s", li.activation);
        mdfi_layer_format qf;
        if (mdfi_net_is_fixed(net) && mdfi_net_layer_format(net, i, &qf) == MDFI_OK) {
            if (qf.w_bits && qf.w_scale)
                printf("  in %d:%d w %d:%s", qf.in_bits, qf.in_frac, qf.w_bits,
                       qf.w_scale == 1 ? "ch" : "mul");
            else if (qf.w_bits)
                printf("  in %d:%d w %d:%d", qf.in_bits, qf.in_frac, qf.w_bits, qf.w_frac);
            if (qf.out_bits)
                printf("  out %d:%d", qf.out_bits, qf.out_frac);
            else
                printf("  out float");
            if (*qf.kernel)
                printf("  [%s]", qf.kernel);
        }
        printf("\n");
        total += li.flops;
        btotal += li.bops;
    }
    printf("total: %d layers, %.3f BFLOPs, %.3f BBOPs, %.1f MB prepared parameters, %.1f MB "
           "activation arena, kernel %s%s\n", mdfi_net_num_layers(net), total / 1e9, btotal / 1e9,
           mdfi_net_weight_bytes(net) / 1048576.0, mdfi_net_arena_bytes(net) / 1048576.0,
           mdfi_net_kernel_name(net), mdfi_net_is_fixed(net) ? ", fixed point" : "");
    cli_print_exits(net);
    mdfi_net_free(net);
    return 0;
}

void cli_print_exits(mdfi_net *net)
{
    const int n = mdfi_net_num_exits(net);
    if (!n)
        return;
    const double main_macs = mdfi_net_main_macs(net);
    printf("exits (policy %s): main path %.3f M MACs\n", mdfi_net_exit_policy(net),
           main_macs / 1e6);
    for (int k = 0; k < n; ++k) {
        mdfi_exit_info e;
        mdfi_net_exit_info(net, k, &e);
        printf("  exit %d: layer %d, from %d, branch %d..%d, threshold %.4g", k, e.layer,
               e.from_layer, e.first, e.last, (double)e.threshold);
        if (e.entropy_predictor)
            printf(", entropy predictor (gate %.4g)", (double)e.entropy_gate);
        if (e.exit_predictor)
            printf(", exit predictor (gate %.4g)", (double)e.exit_gate);
        printf("\n          path %.3f M MACs (%.1f%% of main): branch %.3f M",
               e.path_macs / 1e6, main_macs > 0 ? 100 * e.path_macs / main_macs : 0.0,
               e.branch_macs / 1e6);
        if (e.entropy_predictor || e.exit_predictor)
            printf(", predictor %.4f M", e.predictor_macs / 1e6);
        printf("\n");
    }
}
