/* One parameter source for every layer's load: a Darknet .weights file or
 * an MDFI .qweights file, opened once.  (Provisional: replaced by the full
 * reader with array records.) */
#ifndef MDFI_IO_PARAMS_H
#define MDFI_IO_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "io/qweights.h"
#include "io/weights.h"
#include "mdfi.h"

typedef struct mdfi_params mdfi_params;
typedef enum { MDFI_PARAMS_DARKNET = 1, MDFI_PARAMS_QWEIGHTS = 2 } mdfi_params_kind;

mdfi_status mdfi_params_open(const char *path, mdfi_params **out, mdfi_errbuf *err);
void mdfi_params_close(mdfi_params *p);
mdfi_params_kind mdfi_params_kind_of(const mdfi_params *p);
const char *mdfi_params_path(const mdfi_params *p);
void mdfi_params_at(mdfi_params *p, int layer, const char *type);
mdfi_status mdfi_params_floats(mdfi_params *p, float *dst, size_t n, const char *what,
                               mdfi_errbuf *err);
mdfi_status mdfi_params_check_floats(const mdfi_params *p, size_t n, const char *what,
                                     mdfi_errbuf *err);
long long mdfi_params_bytes_left(const mdfi_params *p);
mdfi_status mdfi_params_finish(mdfi_params *p, mdfi_errbuf *err);
int mdfi_params_transposed(const mdfi_params *p);
int mdfi_params_layers(const mdfi_params *p);
int mdfi_params_records(const mdfi_params *p);
const mdfi_qrecord *mdfi_params_record_at(const mdfi_params *p, int i);
const mdfi_qrecord *mdfi_params_record(const mdfi_params *p, int layer);
mdfi_status mdfi_params_read_gemm(mdfi_params *p, const mdfi_qrecord *r, int32_t *bias,
                                  void *weights, int8_t *w_frac, int32_t *mult,
                                  mdfi_errbuf *err);

#endif
