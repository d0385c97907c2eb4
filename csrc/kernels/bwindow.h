/* A SIGN binary convolution whose input pixels hold few bits (a thermometer
 * coded image: 16 bits a pixel for one grey channel at 16 levels), computed
 * as a 1 x 1 convolution over the windows packed densely.
 *
 * In the padded bit plane (kernels/bgemm.h) such a pixel fills a few bits of
 * its 64-bit word, so a 3 x 3 window of 16-bit pixels costs 9 words of
 * popcounts for 144 bits.  Here a window is cut into units, each of its k
 * rows where a row's k c bits fit a word (else each pixel), and the units
 * are laid into as few words as hold them whole: 3 words for those 144
 * bits, 2 for 3 x 3 of 8 bits.  A row unit is one word of a "row plane",
 * row plane word (y, x) = the plane's words (y, x .. x + k - 1) end to end,
 * made once per input row; a window's units are then k loads, shifts and
 * ORs.  The bits a word has left over (gaps) read 0 and their weights
 * alternate +1 / -1, so they add nothing (an odd count gets one more gap
 * bit in the last word).
 *
 * Taps outside the image read the planes' zero halo and so count as -1
 * signs, where the convolution counts 0: the outputs whose window leaves the
 * image (the border) get sum over the outside taps t of sum_i w[m][i][t]
 * back, the same for every output whose window leaves it the same way (a
 * class).  The integers D are those of the convolution itself. */
#ifndef MDFI_KERNELS_BWINDOW_H
#define MDFI_KERNELS_BWINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/bgemm.h"

#define MDFI_BWIN_MAX_UNITS 32

typedef struct {
    mdfi_bconv bc;        /* the 1 x 1 convolution: out_h x out_w, words x 64 channels */
    int c, ks, stride;    /* of the source convolution: bits a pixel, window, stride */
    int ph, pw;           /* its padded plane */
    int row_units;        /* units are rows (else pixels) */
    int units, words;     /* per window */
    ptrdiff_t off[MDFI_BWIN_MAX_UNITS];   /* a unit's word from the window's first */
    unsigned char q[MDFI_BWIN_MAX_UNITS], s[MDFI_BWIN_MAX_UNITS];   /* its word, shift */
    int nb;               /* outputs whose window leaves the image */
    int32_t *border;      /* [nb] their indices n (ascending), then [nb] their classes */
    int32_t *corr;        /* [M][ncls] what D gains in each class */
    int ncls;
} mdfi_bwin;

/* Whether the source convolution src (SIGN, one word a pixel, k^2 <= 32)
 * takes at most two thirds of its words a window this way. */
int mdfi_bwin_worth(const mdfi_bconv *src);

/* For src (prepared) and its weights wbits [M][c][k][k] (nonzero = +1):
 * 0, or -1 when out of memory. */
int mdfi_bwin_init(mdfi_bwin *w, const mdfi_bconv *src, const unsigned char *wbits);
void mdfi_bwin_free(mdfi_bwin *w);
size_t mdfi_bwin_param_bytes(const mdfi_bwin *w);

/* Words of the row plane (0 with pixel units) and of the dense input. */
size_t mdfi_bwin_rows_words(const mdfi_bwin *w);
size_t mdfi_bwin_input_words(const mdfi_bwin *w);

/* Rows [r0, r1) of the row plane from the same rows of src's padded plane
 * (nothing with pixel units).  Threads may split the rows. */
void mdfi_bwin_rows(const mdfi_bwin *w, const uint64_t *plane, uint64_t *rows, int r0, int r1);

/* Output columns [n0, n1): their windows from the row plane (pixel units:
 * the padded plane) into the dense input, then D on w's kernel to o (float
 * output, alpha 1, beta 0, linear), then the border's corrections.
 * workspace: mdfi_bconv_workspace_size(&w->bc) bytes. */
void mdfi_bwin_run(const mdfi_bwin *w, const uint64_t *src, uint64_t *dense, const mdfi_bout *o,
                   int n0, int n1, void *workspace);

#endif
