/* libFuzzer target for the Darknet .weights reader against a fixed small cfg
 * (every layer kind that reads floats: convolutional with and without batch
 * norm, XNOR, [fracconv], [dualpath], connected): the header and its version
 * rules, every layer's reads and the size check, then prepare (packing) and
 * one forward pass.  Every input loads or fails with a message.  The weights go
 * through a temporary file, as mdfi_net_load_weights takes a path.
 *   make fuzz && build/fuzz/fuzz_weights CORPUS tests/fuzz/corpus/weights
 * (the test suite runs the same function in the gcc mutation loop, tests/fuzz/fuzz_main.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mdfi.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* tests/fuzz/corpus/weights/ holds files made for exactly this cfg. */
static const char cfg[] =
    "[net]\nwidth=6\nheight=6\nchannels=2\n"
    "[convolutional]\nfilters=3\nsize=3\nstride=1\npad=1\nbatch_normalize=1\nactivation=leaky\n"
    "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nbatch_normalize=1\nxnor=1\n"
    "activation=linear\n"
    "[fracconv]\nfilters=4\nsize=3\nstride=1\npad=1\ninput=stream\ngate=1\nshortcut=1\n"
    "from=-1\n"
    "[dualpath]\nfilters=4\nsize=3\nstride=1\npad=1\nabits=1\nfrom=-1\n"
    "[convolutional]\nfilters=2\nsize=1\nstride=1\npad=0\nactivation=relu\n"
    "[connected]\noutput=3\nactivation=linear\n"
    "[softmax]\n";

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(path, sizeof path, "%s/mdfi-fuzz-%ld.weights", dir, (long)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (fwrite(data, 1, size, f) != size || fclose(f))
        abort();
    mdfi_net *net = NULL;
    if (mdfi_net_new(&net) != MDFI_OK)
        abort();
    if (mdfi_net_load_cfg_text(net, cfg, "fuzz.cfg") != MDFI_OK)
        abort();   /* the fixed cfg must build */
    mdfi_status st = mdfi_net_load_weights(net, path);
    if (st == MDFI_OK)
        st = mdfi_net_prepare(net);
    if (st == MDFI_OK) {
        float x[6 * 6 * 2] = {0};
        for (int i = 0; i < 72; i++)
            x[i] = (float)(i % 7) / 7.f;
        st = mdfi_net_forward(net, x, 72);
    }
    fuzz_check_net_error(net, st);
    mdfi_net_free(net);
    unlink(path);
    return 0;
}
