/* libFuzzer target for cfg -> network: parsing, every layer's shapes, routes and
 * shortcuts, the exits, and the memory plan (mdfi_net_prepare), without weights.
 * Every input builds or fails with a message; a small network that builds also
 * runs one forward pass on zeros, and one on 8-bit zeros (accepted exactly where
 * mdfi_net_takes_bytes says so).
 *   make fuzz && build/fuzz/fuzz_net -dict=tests/fuzz/cfg.dict CORPUS tests/fuzz/corpus/net
 * (the test suite runs the same function in the gcc mutation loop, tests/fuzz/fuzz_main.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mdfi.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Beyond these a mutated size would only measure the allocator or the clock. */
#define FUZZ_MAX_ARENA (64u << 20)
#define FUZZ_MAX_WEIGHTS (64u << 20)
#define FUZZ_MAX_FORWARD_MACS 2e6

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    char *text = malloc(size + 1);
    mdfi_net *net = NULL;
    if (!text || mdfi_net_new(&net) != MDFI_OK) {
        free(text);
        return 0;
    }
    memcpy(text, data, size);
    text[size] = 0;
    mdfi_status st = mdfi_net_load_cfg_text(net, text, "fuzz");
    free(text);
    if (st == MDFI_OK) {
        /* the plan's sizes before it allocates: the builder computed the shapes */
        double macs = 0, act = 0, params = 0;
        int n = mdfi_net_num_layers(net);
        for (int i = 0; i < n; i++) {
            mdfi_layer_info li;
            if (mdfi_net_layer_info(net, i, &li) != MDFI_OK || li.out_c < 0 || li.out_h < 0 ||
                li.out_w < 0)
                abort();
            macs += li.macs;
            act += 4.0 * li.out_c * li.out_h * li.out_w;
            if (li.out_h > 0 && li.out_w > 0)   /* a layer's weights, about */
                params += 4.0 * li.macs / ((double)li.out_h * li.out_w);
        }
        if (act <= FUZZ_MAX_ARENA && params <= FUZZ_MAX_WEIGHTS) {
            st = mdfi_net_prepare(net);
            size_t in = mdfi_net_input_size(net);
            if (st == MDFI_OK && macs <= FUZZ_MAX_FORWARD_MACS && in <= (1u << 20)) {
                float *x = calloc(in ? in : 1, sizeof *x);
                if (x) {
                    /* 8-bit input (zeros, as x) runs exactly where the net says
                       it takes bytes; elsewhere it is refused with a message */
                    mdfi_status sb = mdfi_net_forward_bytes(net, (const unsigned char *)x,
                                                            in, -1);
                    if ((sb == MDFI_OK) != mdfi_net_takes_bytes(net))
                        abort();
                    fuzz_check_net_error(net, sb);
                    st = mdfi_net_forward(net, x, in);
                    free(x);
                    const float *out;
                    size_t count;
                    /* a fixed-point net ending in an integer layer refuses
                       the float view (with a message, checked below) */
                    if (st == MDFI_OK)
                        st = mdfi_net_output(net, &out, &count);
                }
            }
        }
    }
    fuzz_check_net_error(net, st);
    mdfi_net_free(net);
    return 0;
}
