/* The one parameter source of a network (see params.h): sniffs the file once,
 * then hands out Darknet floats (weights.c) or .qweights records (qweights.c,
 * qarrays.c) from the same open stream. */
#include "io/params.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/mem.h"
#include "io/weights.h"

struct mdfi_params {
    mdfi_params_kind kind;
    char *path;
    int layer;                 /* from mdfi_params_at, for messages */
    const char *type;
    mdfi_weights_reader dk;    /* Darknet: owns the stream */
    FILE *f;                   /* .qweights: the stream */
    mdfi_qweights *q;          /* .qweights: the index */
};

void mdfi_params_close(mdfi_params *p)
{
    if (!p)
        return;
    if (p->kind == MDFI_PARAMS_DARKNET)
        mdfi_weights_close(&p->dk);
    if (p->f)
        fclose(p->f);
    mdfi_qweights_free(p->q);
    free(p->path);
    free(p);
}

static mdfi_status sniff_and_load(mdfi_params *p, mdfi_errbuf *err)
{
    FILE *f = fopen(p->path, "rb");
    if (!f)
        return mdfi_fail(err, MDFI_ERR_IO, "%s: cannot open: %s", p->path, strerror(errno));
    unsigned char h[8];
    if (fread(h, 1, sizeof h, f) == sizeof h && mdfi_qweights_magic(h)) {
        p->kind = MDFI_PARAMS_QWEIGHTS;
        p->f = f;
        return mdfi_qweights_load(f, p->path, &p->q, err);
    }
    /* anything else is taken for Darknet: its header check says if it is not */
    p->kind = MDFI_PARAMS_DARKNET;
    return mdfi_weights_attach(&p->dk, f, p->path, err);
}

mdfi_status mdfi_params_open(const char *path, mdfi_params **out, mdfi_errbuf *err)
{
    *out = NULL;
    mdfi_params *p = calloc(1, sizeof *p);
    if (!p || !(p->path = mdfi_strdup(path))) {
        free(p);
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    }
    p->layer = -1;
    p->type = "header";
    mdfi_status st = sniff_and_load(p, err);
    if (st != MDFI_OK) {
        mdfi_params_close(p);
        return st;
    }
    *out = p;
    return MDFI_OK;
}

mdfi_params_kind mdfi_params_kind_of(const mdfi_params *p)
{
    return p->kind;
}

const char *mdfi_params_path(const mdfi_params *p)
{
    return p->path;
}

void mdfi_params_at(mdfi_params *p, int layer, const char *type)
{
    p->layer = layer;
    p->type = type ? type : "?";
    p->dk.layer = layer;   /* the Darknet reader's own messages name it too */
    p->dk.layer_type = p->type;
}

/* " at layer N [type]" for the layer being read, if any. */
static const char *where(const mdfi_params *p, char *buf, size_t n)
{
    buf[0] = '\0';
    if (p->layer >= 0)
        snprintf(buf, n, " at layer %d [%s]", p->layer, p->type);
    return buf;
}

/* The error of a call for the other kind of file; what names the call. */
static mdfi_status wrong_kind(const mdfi_params *p, const char *what, mdfi_errbuf *err)
{
    char at[96];
    if (p->kind == MDFI_PARAMS_QWEIGHTS)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s is a quantized weights file (.qweights), "
                         "not Darknet float weights: cannot read %s from it%s", p->path, what,
                         where(p, at, sizeof at));
    return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s is a Darknet weights file, not quantized "
                     "weights (.qweights): cannot read %s from it%s", p->path, what,
                     where(p, at, sizeof at));
}

/* ---- Darknet ---- */

mdfi_status mdfi_params_floats(mdfi_params *p, float *dst, size_t n, const char *what,
                               mdfi_errbuf *err)
{
    if (p->kind != MDFI_PARAMS_DARKNET)
        return wrong_kind(p, what, err);
    return mdfi_weights_read(&p->dk, dst, n, what, err);
}

mdfi_status mdfi_params_check_floats(const mdfi_params *p, size_t n, const char *what,
                                     mdfi_errbuf *err)
{
    if (p->kind != MDFI_PARAMS_DARKNET)
        return wrong_kind(p, what, err);
    return mdfi_weights_check(&p->dk, n, what, err);
}

long long mdfi_params_bytes_left(const mdfi_params *p)
{
    if (p->kind != MDFI_PARAMS_DARKNET)
        return -1;
    return p->dk.pos < p->dk.size ? p->dk.size - p->dk.pos : 0;
}

long long mdfi_params_tell(const mdfi_params *p)
{
    return p->kind == MDFI_PARAMS_DARKNET ? p->dk.pos : -1;
}

mdfi_status mdfi_params_seek(mdfi_params *p, long long pos, mdfi_errbuf *err)
{
    if (p->kind != MDFI_PARAMS_DARKNET)
        return wrong_kind(p, "shared parameters", err);
    if (fseek(p->dk.f, (long)pos, SEEK_SET))
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: cannot seek back to byte %lld (a "
                         "share_index layer reads earlier floats again)", p->path, pos);
    p->dk.pos = pos;
    return MDFI_OK;
}

mdfi_status mdfi_params_finish(mdfi_params *p, mdfi_errbuf *err)
{
    if (p->kind != MDFI_PARAMS_DARKNET)
        return wrong_kind(p, "the end of Darknet weights", err);
    return mdfi_weights_finish(&p->dk, err);
}

int mdfi_params_transposed(const mdfi_params *p)
{
    return p->kind == MDFI_PARAMS_DARKNET && p->dk.transpose;
}

/* ---- .qweights ---- */

int mdfi_params_layers(const mdfi_params *p)
{
    return p->q ? p->q->n_layers : -1;
}

int mdfi_params_records(const mdfi_params *p)
{
    return p->q ? p->q->n_rec : 0;
}

const mdfi_qrecord *mdfi_params_record_at(const mdfi_params *p, int i)
{
    return p->q && i >= 0 && i < p->q->n_rec ? &p->q->rec[i] : NULL;
}

const mdfi_qrecord *mdfi_params_record(const mdfi_params *p, int layer)
{
    return mdfi_qweights_find(p->q, layer);
}

mdfi_status mdfi_params_read_gemm(mdfi_params *p, const mdfi_qrecord *r, int32_t *bias,
                                  void *weights, int8_t *w_frac, int32_t *mult,
                                  mdfi_errbuf *err)
{
    if (p->kind != MDFI_PARAMS_QWEIGHTS)
        return wrong_kind(p, "a quantized GEMM record", err);
    /* only this source's index was checked against the file */
    if (!r || mdfi_qweights_find(p->q, r->layer) != r)
        return mdfi_fail(err, MDFI_ERR_ARG, "%s: the record asked for is not one of this "
                         "file's", p->path);
    return mdfi_qweights_read_from(p->f, p->path, r, bias, weights, w_frac, mult, err);
}

/* "layer N [type]" when mdfi_params_at named that layer, else "layer N". */
static const char *layer_tag(const mdfi_params *p, int layer, char *buf, size_t n)
{
    if (layer == p->layer)
        snprintf(buf, n, "layer %d [%s]", layer, p->type);
    else
        snprintf(buf, n, "layer %d", layer);
    return buf;
}

/* The names of a kind-3 record's arrays, for "has no array" messages. */
static const char *array_names(const mdfi_qrecord *r, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < r->outputs && used + 1 < n; ++i) {
        int w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "", r->arrays[i].name);
        used += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

static mdfi_status array_of(const mdfi_params *p, const mdfi_qrecord *r, const char *tag,
                            const char *name, int dtype, size_t count, const mdfi_qarray **out,
                            mdfi_errbuf *err)
{
    char names[200];
    if (!r)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s has no record for %s (asked for its array "
                         "\"%s\")", p->path, tag, name);
    if (r->kind != MDFI_QW_ARRAYS)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: %s's record holds GEMM weights (kind "
                         "%d), not named arrays (asked for \"%s\")", p->path, tag, r->kind,
                         name);
    const mdfi_qarray *a = mdfi_qarrays_find(r, name);
    if (!a)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: %s has no array \"%s\" (it has %s)",
                         p->path, tag, name, array_names(r, names, sizeof names));
    if (a->dtype != dtype)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: %s: array \"%s\" is %s, asked for as %s",
                         p->path, tag, name, mdfi_qarray_dtype_name(a->dtype),
                         mdfi_qarray_dtype_name(dtype));
    if (a->count != count)
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: %s: array \"%s\" has %zu values, asked "
                         "for %zu", p->path, tag, name, a->count, count);
    *out = a;
    return MDFI_OK;
}

mdfi_status mdfi_params_read_array(mdfi_params *p, int layer, const char *name, int dtype,
                                   size_t count, void *dst, mdfi_errbuf *err)
{
    char tag[96];
    if (p->kind != MDFI_PARAMS_QWEIGHTS)
        return wrong_kind(p, name, err);
    layer_tag(p, layer, tag, sizeof tag);
    const mdfi_qarray *a = NULL;
    MDFI_CHECK(array_of(p, mdfi_qweights_find(p->q, layer), tag, name, dtype, count, &a, err));
    size_t size = mdfi_qarray_size(a->dtype);
    /* as stored: a little-endian host (checked at open) */
    if (count && (fseek(p->f, (long)a->offset, SEEK_SET) ||
                  fread(dst, size, count, p->f) != count))
        return mdfi_fail(err, MDFI_ERR_WEIGHTS, "%s: %s: array \"%s\" cannot be read (file "
                         "changed since it was opened?)", p->path, tag, name);
    return MDFI_OK;
}
