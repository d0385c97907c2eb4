/* Binary convolutions of few-bit pixels as 1 x 1 convolutions over densely
 * packed windows (kernels/bwindow.h). */
#include "kernels/bwindow.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* The units of src's windows and the words they fill (0: none fit). */
typedef struct {
    int row_units, ub, units, per, words, kd;   /* kd: the 1 x 1 convolution's channels */
} layout;

static int plan(const mdfi_bconv *src, layout *L)
{
    const int C = src->g.channels, ks = src->g.ksize, T2 = ks * ks;
    if (src->mode != MDFI_BMODE_SIGN || src->words != 1 || T2 > MDFI_BWIN_MAX_UNITS)
        return 0;
    L->row_units = ks * C <= 64;
    L->ub = (L->row_units ? ks : 1) * C;
    L->units = L->row_units ? ks : T2;
    L->per = 64 / L->ub;
    L->words = (L->units + L->per - 1) / L->per;
    const int last = (L->units - (L->words - 1) * L->per) * L->ub;
    const int gaps = (L->words - 1) * (64 - L->per * L->ub);
    L->kd = 64 * (L->words - 1) + last + gaps % 2;   /* an even number of gap bits */
    return L->kd <= 64 * L->words;
}

int mdfi_bwin_worth(const mdfi_bconv *src)
{
    layout L;
    const int T2 = src->g.ksize * src->g.ksize;
    return plan(src, &L) && 3 * L.words <= 2 * T2;
}

/* The taps of output (oy, ox)'s window that lie outside the image, a bit each. */
MDFI_COLD static uint32_t outside(const mdfi_conv_geom *g, int oy, int ox)
{
    uint32_t mask = 0;
    for (int t = 0; t < g->ksize * g->ksize; ++t) {
        const int y = oy * g->stride - g->pad + t / g->ksize;
        const int x = ox * g->stride - g->pad + t % g->ksize;
        if (y < 0 || y >= g->in_h || x < 0 || x >= g->in_w)
            mask |= 1u << t;
    }
    return mask;
}

/* The border's outputs and their classes (distinct outside masks). */
MDFI_COLD static int find_border(mdfi_bwin *w, const mdfi_conv_geom *g, uint32_t *masks)
{
    const size_t N = (size_t)g->out_h * g->out_w;
    int32_t *n_of = malloc(2 * N * sizeof *n_of);
    if (!n_of)
        return -1;
    int nb = 0;
    for (int oy = 0; oy < g->out_h; ++oy)
        for (int ox = 0; ox < g->out_w; ++ox) {
            const uint32_t m = outside(g, oy, ox);
            if (!m)
                continue;
            int c = 0;
            while (c < w->ncls && masks[c] != m)
                ++c;
            if (c == w->ncls)
                masks[w->ncls++] = m;
            n_of[nb] = oy * g->out_w + ox;
            n_of[N + nb++] = c;
        }
    w->nb = nb;
    w->border = malloc(((size_t)2 * nb + 1) * sizeof *w->border);
    if (w->border) {
        memcpy(w->border, n_of, (size_t)nb * sizeof *n_of);
        memcpy(w->border + nb, n_of + N, (size_t)nb * sizeof *n_of);
    }
    free(n_of);
    return w->border ? 0 : -1;
}

MDFI_COLD int mdfi_bwin_init(mdfi_bwin *w, const mdfi_bconv *src, const unsigned char *wbits)
{
    memset(w, 0, sizeof *w);
    const mdfi_conv_geom *g = &src->g;
    const int C = g->channels, ks = g->ksize, T2 = ks * ks, M = src->M;
    layout L;
    if (!plan(src, &L))
        return -1;
    w->c = C;
    w->ks = ks;
    w->stride = g->stride;
    w->ph = src->ph;
    w->pw = src->pw;
    w->row_units = L.row_units;
    w->units = L.units;
    w->words = L.words;
    for (int u = 0; u < L.units; ++u) {
        w->q[u] = (unsigned char)(u / L.per);
        w->s[u] = (unsigned char)(u % L.per * L.ub);
        w->off[u] = L.row_units ? (ptrdiff_t)u * w->pw : (ptrdiff_t)(u / ks) * w->pw + u % ks;
    }
    uint32_t *masks = malloc((size_t)g->out_h * g->out_w * sizeof *masks);   /* classes <= N */
    unsigned char *wd = calloc((size_t)M * L.kd + 1, 1);
    int failed = !masks || !wd || find_border(w, g, masks);
    if (!failed) {
        w->corr = malloc((size_t)M * (w->ncls ? w->ncls : 1) * sizeof *w->corr);
        failed = !w->corr;
    }
    if (!failed) {
        const int px = L.row_units ? ks : 1;
        for (int m = 0; m < M; ++m) {
            unsigned char *wm = wd + (size_t)m * L.kd;
            memset(wm, 2, (size_t)L.kd);   /* 2: a gap, until a unit's bit lands there */
            for (int u = 0; u < L.units; ++u)
                for (int p = 0; p < px; ++p)
                    for (int i = 0; i < C; ++i)
                        wm[64 * w->q[u] + w->s[u] + p * C + i] =
                            wbits[((size_t)m * C + i) * T2 + u * px + p] != 0;
            int alt = 1;   /* gaps alternate +1 / -1: their zeros add nothing */
            for (int j = 0; j < L.kd; ++j)
                if (wm[j] == 2) {
                    wm[j] = (unsigned char)alt;
                    alt ^= 1;
                }
            /* an outside tap's zero bits count -w (sign -1); the convolution counts 0 */
            for (int k = 0; k < w->ncls; ++k) {
                int32_t v = 0;
                for (int t = 0; t < T2; ++t)
                    for (int i = 0; masks[k] >> t & 1 && i < C; ++i)
                        v += wbits[((size_t)m * C + i) * T2 + t] ? 1 : -1;
                w->corr[(size_t)m * w->ncls + k] = v;
            }
        }
        const mdfi_conv_geom d = {L.kd, g->out_h, g->out_w, 1, 1, 0, g->out_h, g->out_w, 1, 1};
        failed = mdfi_bconv_init(&w->bc, src->k, MDFI_BMODE_SIGN, &d, M, wd);
    }
    free(masks);
    free(wd);
    if (failed)
        mdfi_bwin_free(w);
    return failed ? -1 : 0;
}

void mdfi_bwin_free(mdfi_bwin *w)
{
    mdfi_bconv_free(&w->bc);
    free(w->border);
    free(w->corr);
    w->border = w->corr = NULL;
}

MDFI_COLD size_t mdfi_bwin_param_bytes(const mdfi_bwin *w)
{
    return mdfi_bconv_param_bytes(&w->bc) +
           ((size_t)2 * w->nb + (size_t)w->bc.M * w->ncls) * sizeof(int32_t);
}

size_t mdfi_bwin_rows_words(const mdfi_bwin *w)
{
    return w->row_units ? (size_t)w->ph * w->pw : 0;
}

size_t mdfi_bwin_input_words(const mdfi_bwin *w)
{
    return (size_t)w->words * w->bc.g.out_h * w->bc.g.out_w;
}

void mdfi_bwin_rows(const mdfi_bwin *w, const uint64_t *plane, uint64_t *rows, int r0, int r1)
{
    for (int r = r0; w->row_units && r < r1; ++r) {
        const uint64_t *p = plane + (size_t)r * w->pw;
        uint64_t *h = rows + (size_t)r * w->pw;
        for (int x = 0; x + w->ks <= w->pw; ++x) {
            uint64_t v = 0;
            for (int kx = 0; kx < w->ks; ++kx)
                v |= p[x + kx] << (kx * w->c);
            h[x] = v;
        }
    }
}

/* Output columns [n0, n1)'s windows: the units of a word ORed in a register
 * (units come in the order of their words, each word has one). */
static void pack(const mdfi_bwin *w, const uint64_t *src, uint64_t *dense, int n0, int n1)
{
    const int ow = w->bc.g.out_w;
    const size_t N = (size_t)w->bc.g.out_h * ow;
    int oy = n0 / ow, ox = n0 % ow;
    for (int n = n0; n < n1; ++n) {
        const uint64_t *p = src + (ptrdiff_t)oy * w->stride * w->pw + (ptrdiff_t)ox * w->stride;
        uint64_t v = 0;
        int q = 0;
        for (int u = 0; u < w->units; ++u) {
            if (w->q[u] != q) {
                dense[(size_t)q * N + n] = v;
                v = 0;
                q = w->q[u];
            }
            v |= p[w->off[u]] << w->s[u];
        }
        dense[(size_t)q * N + n] = v;
        if (++ox == ow) {
            ox = 0;
            ++oy;
        }
    }
}

void mdfi_bwin_run(const mdfi_bwin *w, const uint64_t *src, uint64_t *dense, const mdfi_bout *o,
                   int n0, int n1, void *workspace)
{
    pack(w, src, dense, n0, n1);
    mdfi_bconv_run(&w->bc, dense, o, n0, n1, workspace);
    const int32_t *cls = w->border + w->nb;
    for (int b = 0; b < w->nb; ++b) {
        const int32_t n = w->border[b];
        if (n < n0 || n >= n1)
            continue;
        for (int m = 0; m < w->bc.M; ++m)
            o->out[(size_t)m * o->ldc + (size_t)n] += (float)w->corr[(size_t)m * w->ncls + cls[b]];
    }
}
