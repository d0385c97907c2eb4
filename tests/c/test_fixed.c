/* Runs a quantized network and prints a CRC-32 of every integer layer output,
 * so builds for different CPUs (x86-64, aarch64 and armhf under qemu) can be
 * compared bit for bit.
 *
 *   test_fixed CFG QWEIGHTS INPUT.f32 [--kernel ISA] [--threads N]
 *       INPUT.f32: the network input, raw little-endian float32 CHW
 *       prints "layer BITS:FRAC COUNT CRC" per integer layer, then "ok"
 *   test_fixed --quick
 *       a built-in network with every fixed-point layer type and no weights:
 *       all outputs must be the integer 0 (zero weights and biases) and each
 *       head must read 0.5 or the uniform softmax */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/qweights.h"
#include "mdfi.h"

static const char quick_cfg[] =
    "[net]\nwidth=9\nheight=7\nchannels=3\n"
    "[convolutional]\nfixed_in=8:7\nfixed_w=8:6\nfixed_out=8:4\nfilters=8\nsize=3\npad=1\n"
    "activation=leaky\n"
    "[maxpool]\nfixed_out=8:4\nsize=2\nstride=2\n"
    "[convolutional]\nfixed_in=16:4\nfixed_w=16:9\nfixed_out=16:8\nfilters=8\nsize=3\n"
    "stride=1\npad=1\ngroups=2\nactivation=relu\n"
    "[upsample]\nfixed_out=16:6\nstride=2\n"
    "[route]\nfixed_out=8:3\nlayers=-1\n"
    "[convolutional]\nfixed_in=8:3\nfixed_w=8:ch\nfixed_out=8:2\nfilters=8\nsize=1\n"
    "activation=linear\n"
    "[shortcut]\nfixed_out=8:2\nfrom=-2\nactivation=leaky\n"
    "[avgpool]\nfixed_out=16:10\n"
    "[connected]\nfixed_in=16:10\nfixed_w=16:12\nfixed_out=16:8\noutput=5\nactivation=linear\n"
    "[softmax]\n";

static int fail(mdfi_net *net, const char *what)
{
    fprintf(stderr, "test_fixed: %s: %s\n", what, net ? mdfi_net_last_error(net) : "");
    mdfi_net_free(net);
    return 1;
}

static int quick(void)
{
    mdfi_net *net;
    if (mdfi_net_new(&net) != MDFI_OK)
        return 1;
    if (mdfi_net_load_cfg_text(net, quick_cfg, "quick.cfg") != MDFI_OK)
        return fail(net, "cfg");
    if (mdfi_net_set_keep_outputs(net, 1) != MDFI_OK || mdfi_net_prepare(net) != MDFI_OK)
        return fail(net, "prepare");
    size_t n = mdfi_net_input_size(net);
    float *x = malloc(n * sizeof *x);
    if (!x)
        return fail(net, "memory");
    for (size_t i = 0; i < n; ++i)
        x[i] = (float)(i % 17) / 16.f - 0.3f;
    int bad = mdfi_net_forward(net, x, n) != MDFI_OK;
    free(x);
    for (int i = 0; !bad && i < mdfi_net_num_layers(net); ++i) {
        mdfi_layer_format f;
        mdfi_net_layer_format(net, i, &f);
        if (f.out_bits) {
            const void *d;
            size_t cnt;
            int bits, frac;
            if (mdfi_net_layer_output_int(net, i, &d, &cnt, &bits, &frac) != MDFI_OK)
                return fail(net, "layer_output_int");
            for (size_t k = 0; k < cnt; ++k)
                bad |= bits == 8 ? ((const int8_t *)d)[k] != 0 : ((const int16_t *)d)[k] != 0;
        } else {
            const float *d;
            size_t cnt;
            if (mdfi_net_layer_output(net, i, &d, &cnt) != MDFI_OK)
                return fail(net, "layer_output");
            for (size_t k = 0; k < cnt; ++k)
                bad |= d[k] != 1.f / (float)cnt;
        }
        if (bad)
            fprintf(stderr, "test_fixed --quick: layer %d is not zero\n", i);
    }
    mdfi_net_free(net);
    printf(bad ? "FAILED\n" : "ok\n");
    return bad;
}

int main(int argc, char **argv)
{
    const char *pos[3] = {0}, *kernel = NULL;
    int n_pos = 0, threads = 1;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--quick"))
            return quick();
        if (!strcmp(argv[i], "--kernel") && i + 1 < argc)
            kernel = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (n_pos < 3)
            pos[n_pos++] = argv[i];
    }
    if (n_pos != 3) {
        fprintf(stderr, "usage: test_fixed CFG QWEIGHTS INPUT.f32 [--kernel ISA] [--threads N]"
                        " | --quick\n");
        return 2;
    }
    mdfi_net *net;
    if (mdfi_net_new(&net) != MDFI_OK)
        return 1;
    if (mdfi_net_load_cfg(net, pos[0]) != MDFI_OK || mdfi_net_load_weights(net, pos[1]) != MDFI_OK)
        return fail(net, "load");
    if ((kernel && mdfi_net_set_kernel(net, kernel) != MDFI_OK) ||
        mdfi_net_set_threads(net, threads) != MDFI_OK || mdfi_net_set_keep_outputs(net, 1) ||
        mdfi_net_prepare(net) != MDFI_OK)
        return fail(net, "prepare");
    size_t n = mdfi_net_input_size(net);
    float *x = malloc(n * sizeof *x);
    FILE *f = fopen(pos[2], "rb");
    size_t got = f && x ? fread(x, sizeof *x, n, f) : 0;
    if (f)
        fclose(f);
    if (got != n) {
        free(x);
        return fail(net, "input file too short");
    }
    if (mdfi_net_forward(net, x, n) != MDFI_OK) {
        free(x);
        return fail(net, "forward");
    }
    free(x);
    printf("kernel %s\n", mdfi_net_kernel_name(net));
    for (int i = 0; i < mdfi_net_num_layers(net); ++i) {
        const void *d;
        size_t cnt;
        int bits, frac;
        if (mdfi_net_layer_output_int(net, i, &d, &cnt, &bits, &frac) != MDFI_OK)
            continue;   /* float heads */
        printf("%d %d:%d %zu %08x\n", i, bits, frac, cnt,
               (unsigned)mdfi_crc32(0, d, cnt * (size_t)(bits / 8)));
    }
    printf("ok\n");
    mdfi_net_free(net);
    return 0;
}
