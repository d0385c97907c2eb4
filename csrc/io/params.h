/* One source of layer parameters per weights file: a Darknet .weights file
 * (float32 arrays in the order the layers ask for them) or an MDFI .qweights
 * file (integer records, one per layer, checked whole at open).  The file's
 * leading bytes say which; it is opened once and stays open until closed.
 *
 * Calling a function of one kind on a source of the other kind is an
 * MDFI_ERR_WEIGHTS error naming the file (the functions that return a value
 * return 0, -1 or NULL instead).  Every message names the file, and the
 * layer last given to mdfi_params_at. */
#ifndef MDFI_IO_PARAMS_H
#define MDFI_IO_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "io/qweights.h"
#include "mdfi.h"

typedef struct mdfi_params mdfi_params;   /* opaque */
typedef enum { MDFI_PARAMS_DARKNET = 1, MDFI_PARAMS_QWEIGHTS = 2 } mdfi_params_kind;

/* Opens and sniffs path; a .qweights file is checked whole (CRC, records),
 * a Darknet file's header is read. */
mdfi_status mdfi_params_open(const char *path, mdfi_params **out, mdfi_errbuf *err);
void mdfi_params_close(mdfi_params *p);                 /* NULL is fine */
mdfi_params_kind mdfi_params_kind_of(const mdfi_params *p);
const char *mdfi_params_path(const mdfi_params *p);
/* Names the layer being read, for messages; type must outlive the reads. */
void mdfi_params_at(mdfi_params *p, int layer, const char *type);

/* ---- Darknet files ---- */
/* The next n float32 in file order; what names the array ("biases"...). */
mdfi_status mdfi_params_floats(mdfi_params *p, float *dst, size_t n, const char *what,
                               mdfi_errbuf *err);
/* Fails as mdfi_params_floats of n would if fewer are left (reads nothing). */
mdfi_status mdfi_params_check_floats(const mdfi_params *p, size_t n, const char *what,
                                     mdfi_errbuf *err);
/* Bytes after the header not yet read; -1 for a .qweights source. */
long long mdfi_params_bytes_left(const mdfi_params *p);
/* Where the next float is read, and going back there (a layer that reads an
 * earlier layer's floats again: share_index); -1 / an error for .qweights. */
long long mdfi_params_tell(const mdfi_params *p);
mdfi_status mdfi_params_seek(mdfi_params *p, long long pos, mdfi_errbuf *err);
/* After the last layer: the file must be consumed exactly. */
mdfi_status mdfi_params_finish(mdfi_params *p, mdfi_errbuf *err);
/* 1 if connected weights are stored transposed (header major/minor > 1000). */
int mdfi_params_transposed(const mdfi_params *p);

/* ---- .qweights files ---- */
int mdfi_params_layers(const mdfi_params *p);    /* cfg layers the file was made for; -1 */
int mdfi_params_records(const mdfi_params *p);   /* 0 for a Darknet source */
const mdfi_qrecord *mdfi_params_record_at(const mdfi_params *p, int i);  /* NULL if none */
const mdfi_qrecord *mdfi_params_record(const mdfi_params *p, int layer); /* NULL if none */
/* A GEMM record (kind 1 or 2) of this source: bias[M], weights[M*K] (int8_t
 * or int16_t per w_bits), modes 1 and 2 the weight fractions[M], mode 2 the
 * multipliers[M] (w_frac / mult may then not be NULL). */
mdfi_status mdfi_params_read_gemm(mdfi_params *p, const mdfi_qrecord *r, int32_t *bias,
                                  void *weights, int8_t *w_frac, int32_t *mult,
                                  mdfi_errbuf *err);
/* The array called name of layer's kind-3 record (MDFI_QW_ARRAYS), as stored:
 * its dtype (MDFI_QW_INT8...) and count must be as asked, else an error naming
 * the file, the layer and the array.  dst holds count elements. */
mdfi_status mdfi_params_read_array(mdfi_params *p, int layer, const char *name, int dtype,
                                   size_t count, void *dst, mdfi_errbuf *err);

#endif
