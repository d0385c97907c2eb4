/* Provisional parameter source over weights.c and qweights.c. */
#include "io/params.h"

#include <stdlib.h>

#include "base/error.h"

struct mdfi_params {
    mdfi_params_kind kind;
    mdfi_weights_reader w;
    mdfi_qweights *q;
};

mdfi_status mdfi_params_open(const char *path, mdfi_params **out, mdfi_errbuf *err)
{
    mdfi_params *p = calloc(1, sizeof *p);
    *out = NULL;
    if (!p)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    mdfi_status st;
    if (mdfi_qweights_sniff(path)) {
        p->kind = MDFI_PARAMS_QWEIGHTS;
        st = mdfi_qweights_open(path, &p->q, err);
    } else {
        p->kind = MDFI_PARAMS_DARKNET;
        st = mdfi_weights_open(&p->w, path, err);
        if (st != MDFI_OK)
            p->w.f = NULL;
    }
    if (st != MDFI_OK) {
        mdfi_params_close(p);
        return st;
    }
    *out = p;
    return MDFI_OK;
}

void mdfi_params_close(mdfi_params *p)
{
    if (!p)
        return;
    if (p->kind == MDFI_PARAMS_DARKNET && p->w.f)
        mdfi_weights_close(&p->w);
    mdfi_qweights_free(p->q);
    free(p);
}

mdfi_params_kind mdfi_params_kind_of(const mdfi_params *p) { return p->kind; }
const char *mdfi_params_path(const mdfi_params *p)
{
    return p->kind == MDFI_PARAMS_QWEIGHTS ? p->q->path : p->w.path;
}
void mdfi_params_at(mdfi_params *p, int layer, const char *type)
{
    p->w.layer = layer;
    p->w.layer_type = type;
}
mdfi_status mdfi_params_floats(mdfi_params *p, float *dst, size_t n, const char *what,
                               mdfi_errbuf *err)
{
    return mdfi_weights_read(&p->w, dst, n, what, err);
}
mdfi_status mdfi_params_check_floats(const mdfi_params *p, size_t n, const char *what,
                                     mdfi_errbuf *err)
{
    return mdfi_weights_check(&p->w, n, what, err);
}
long long mdfi_params_bytes_left(const mdfi_params *p) { return p->w.size - p->w.pos; }
mdfi_status mdfi_params_finish(mdfi_params *p, mdfi_errbuf *err)
{
    return p->kind == MDFI_PARAMS_DARKNET ? mdfi_weights_finish(&p->w, err) : MDFI_OK;
}
int mdfi_params_transposed(const mdfi_params *p) { return p->w.transpose; }
int mdfi_params_layers(const mdfi_params *p) { return p->q->n_layers; }
int mdfi_params_records(const mdfi_params *p) { return p->q->n_rec; }
const mdfi_qrecord *mdfi_params_record_at(const mdfi_params *p, int i) { return &p->q->rec[i]; }
const mdfi_qrecord *mdfi_params_record(const mdfi_params *p, int layer)
{
    return mdfi_qweights_find(p->q, layer);
}
mdfi_status mdfi_params_read_gemm(mdfi_params *p, const mdfi_qrecord *r, int32_t *bias,
                                  void *weights, int8_t *w_frac, int32_t *mult,
                                  mdfi_errbuf *err)
{
    return mdfi_qweights_read(p->q, r, bias, weights, w_frac, mult, err);
}
