/* libFuzzer target for the cfg tokenizer and its value getters: every input
 * parses or fails with a message naming the input, and every key of every
 * section reads as an int, a float and lists of both, or fails with a message.
 *   make fuzz && build/fuzz/fuzz_cfg -dict=tests/fuzz/cfg.dict CORPUS tests/fuzz/corpus/cfg
 * (the test suite runs the same function in the gcc mutation loop, tests/fuzz/fuzz_main.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(mdfi_status st, const mdfi_errbuf *err)
{
    if (st != MDFI_OK && (st != MDFI_ERR_CFG || strncmp(err->msg, "fuzz", 4) != 0))
        abort();   /* a value fails as a cfg error that names the file */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    mdfi_cfg cfg;
    mdfi_errbuf err;
    err.msg[0] = 0;
    mdfi_status st = mdfi_cfg_parse(text, "fuzz", &cfg, &err);
    free(text);
    if (st != MDFI_OK) {
        if (strncmp(err.msg, "fuzz", 4) != 0)
            abort();   /* a failure must say why, naming the file */
        return 0;
    }
    for (int s = 0; s < cfg.n_sec; s++) {
        mdfi_cfg_section *sec = &cfg.sec[s];
        if (!sec->type || !sec->type[0] || sec->line < 1)
            abort();
        for (int k = 0; k < sec->n_kv; k++) {
            const char *key = sec->kv[k].key;
            int iv, n;
            float fv;
            int ivals[16];
            float fvals[16];
            err.msg[0] = 0;
            check(mdfi_cfg_int(&cfg, sec, key, 0, &iv, &err), &err);
            check(mdfi_cfg_float(&cfg, sec, key, 0.f, &fv, &err), &err);
            check(mdfi_cfg_int_list(&cfg, sec, key, ivals, 16, &n, &err), &err);
            check(mdfi_cfg_float_list(&cfg, sec, key, fvals, 16, &n, &err), &err);
            if (mdfi_cfg_line(sec, key) < sec->line || !mdfi_cfg_str(sec, key, NULL))
                abort();
        }
    }
    mdfi_cfg_free(&cfg);
    return 0;
}
