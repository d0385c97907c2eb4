/* Activation memory plan: one arena, each layer's output placed by the
 * greedy-by-size rule among buffers whose lifetimes overlap.  A buffer lives
 * from its layer to its last reader (route/shortcut extend that); outputs the
 * caller may read after forward (last layer, [yolo], marked outputs,
 * keep_outputs) live to the end.  The last step of each buffer is kept, so a
 * stopped run knows which outputs are still intact (net/forward.c). */
#include <stdlib.h>

#include "base/mem.h"
#include "net/net.h"

typedef struct {
    int owner;            /* layer index */
    int first, last;      /* lifetime in layer steps, inclusive */
    size_t size, offset;  /* floats */
} buf;

static int by_size_desc(const void *a, const void *b)
{
    const buf *x = a, *y = b;
    if (x->size != y->size)
        return x->size < y->size ? 1 : -1;
    return x->owner - y->owner;
}

mdfi_status mdfi_net_plan(mdfi_net *net)
{
    int n = net->n;
    int *owner = malloc((size_t)n * sizeof *owner);
    int *last = malloc((size_t)n * sizeof *last);
    buf *bufs = malloc((size_t)n * sizeof *bufs);
    net->out = calloc((size_t)n, sizeof *net->out);
    net->last = calloc((size_t)n, sizeof *net->last);
    if (!owner || !last || !bufs || !net->out || !net->last) {
        free(owner);
        free(last);
        free(bufs);
        return mdfi_net_fail(net, MDFI_ERR_NOMEM, "out of memory planning buffers");
    }
    /* owner: whose buffer a layer's output lives in (-1: the caller's input) */
    for (int i = 0; i < n; ++i) {
        const mdfi_layer *l = &net->layers[i];
        owner[i] = mdfi_layer_has_kind(l, MDFI_KIND_ALIAS) ? (l->in[0] < 0 ? -1 : owner[l->in[0]])
                                                         : i;
        last[i] = i;
    }
    net->weight_bytes = 0;   /* a retried prepare counts afresh */
    for (int i = 0; i < n; ++i) {
        const mdfi_layer *l = &net->layers[i];
        int at = i + l->fused;   /* a fused conv reads its inputs while its maxpool writes */
        for (int k = 0; k < l->n_in; ++k)
            if (l->in[k] >= 0 && owner[l->in[k]] >= 0 && last[owner[l->in[k]]] < at)
                last[owner[l->in[k]]] = at;
        int end = l->keep || i == n - 1 || mdfi_layer_has_kind(l, MDFI_KIND_YOLO);
        if (end && owner[i] >= 0)
            last[owner[i]] = n;
        net->weight_bytes += l->param_bytes;
    }
    int nb = 0;
    for (int i = 0; i < n; ++i)
        if (owner[i] == i && !net->layers[i].fused) {   /* a fused conv has no buffer */
            const mdfi_layer *l = &net->layers[i];
            size_t floats = l->out_bytes ? (l->out_bytes + sizeof(float) - 1) / sizeof(float)
                                         : mdfi_layer_outputs(l);
            size_t size = (floats + 15) & ~(size_t)15;   /* 64-byte aligned offsets */
            bufs[nb++] = (buf){i, i, last[i], size, 0};
        }
    qsort(bufs, (size_t)nb, sizeof *bufs, by_size_desc);
    size_t total = 0;
    for (int b = 0; b < nb; ++b) {
        /* lowest offset that clears every placed buffer alive at the same time */
        size_t off = 0;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int p = 0; p < b; ++p) {
                const buf *q = &bufs[p];
                int overlap_time = q->first <= bufs[b].last && bufs[b].first <= q->last;
                int overlap_mem = q->offset < off + bufs[b].size && off < q->offset + q->size;
                if (overlap_time && overlap_mem) {
                    off = q->offset + q->size;
                    moved = 1;
                }
            }
        }
        bufs[b].offset = off;
        if (off + bufs[b].size > total)
            total = off + bufs[b].size;
    }
    net->arena_floats = total;
    net->arena = mdfi_aligned_alloc(total * sizeof(float));
    mdfi_status st = MDFI_OK;
    if (!net->arena) {
        st = mdfi_net_fail(net, MDFI_ERR_NOMEM, "out of memory for a %zu-byte activation "
                           "arena", total * sizeof(float));
    } else {
        for (int b = 0; b < nb; ++b)
            net->out[bufs[b].owner] = net->arena + bufs[b].offset;
        for (int i = 0; i < n; ++i) {
            if (owner[i] >= 0)
                net->out[i] = net->out[owner[i]];
            net->last[i] = owner[i] < 0 ? n : last[owner[i]];
        }
    }
    free(owner);
    free(last);
    free(bufs);
    return st;
}
