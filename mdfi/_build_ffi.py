"""cffi (API mode) build of the C core's public API.

The C sources are compiled by the project's Makefile into a static library
(so per-file ISA flags stay in one place); this module links it.
"""
import os
import pathlib
import subprocess

from cffi import FFI

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "python"

CDEF = """
typedef enum {
    MDFI_OK = 0, MDFI_ERR_IO = 1, MDFI_ERR_CFG = 2, MDFI_ERR_WEIGHTS = 3, MDFI_ERR_SHAPE = 4,
    MDFI_ERR_NOMEM = 5, MDFI_ERR_ARG = 6, MDFI_ERR_IMAGE = 7, MDFI_ERR_UNSUPPORTED = 8
} mdfi_status;
typedef struct { char msg[512]; } mdfi_errbuf;
typedef struct mdfi_net mdfi_net;
typedef struct { int c, h, w; } mdfi_shape;
typedef struct {
    const char *type;
    int in_c, in_h, in_w;
    int out_c, out_h, out_w;
    int filters, size, stride, groups, pad;
    const char *activation;
    double flops;
    int line;
    int batch_normalize, xnor;
} mdfi_layer_info;
typedef struct { int w, h, c; float *data; } mdfi_image;
typedef struct {
    int det_index;
    int class_id;
    float prob, objectness;
    float x, y, w, h;
    int left, top, right, bottom;
} mdfi_detection;

const char *mdfi_status_name(mdfi_status st);
mdfi_status mdfi_net_new(mdfi_net **out);
void mdfi_net_free(mdfi_net *net);
const char *mdfi_net_last_error(const mdfi_net *net);
mdfi_status mdfi_net_load_cfg(mdfi_net *net, const char *path);
mdfi_status mdfi_net_load_cfg_text(mdfi_net *net, const char *text, const char *name);
mdfi_status mdfi_net_load_weights(mdfi_net *net, const char *path);
mdfi_status mdfi_net_set_threads(mdfi_net *net, int threads);
mdfi_status mdfi_net_set_kernel(mdfi_net *net, const char *isa);
mdfi_status mdfi_net_set_keep_outputs(mdfi_net *net, int keep);
typedef struct {
    int threads;
    const char *kernel;
    const char *binary_kernel;
    int binary_fuse;
    int fuse_pool;
    int keep_outputs;
} mdfi_options;
void mdfi_options_default(mdfi_options *opt);
mdfi_status mdfi_net_set_options(mdfi_net *net, const mdfi_options *opt);
mdfi_status mdfi_net_get_options(const mdfi_net *net, mdfi_options *opt);
mdfi_status mdfi_net_mark_output(mdfi_net *net, int index);
mdfi_status mdfi_net_forward_until(mdfi_net *net, const float *input, size_t n, int last);
mdfi_status mdfi_net_resume(mdfi_net *net, int last);
int mdfi_net_done(const mdfi_net *net);
mdfi_status mdfi_net_prepare(mdfi_net *net);
mdfi_status mdfi_net_forward(mdfi_net *net, const float *input, size_t n);
mdfi_status mdfi_net_input_shape(const mdfi_net *net, mdfi_shape *shape);
size_t mdfi_net_input_size(const mdfi_net *net);
const char *mdfi_net_kernel_name(const mdfi_net *net);
int mdfi_net_threads(const mdfi_net *net);
size_t mdfi_net_arena_bytes(const mdfi_net *net);
size_t mdfi_net_weight_bytes(const mdfi_net *net);
int mdfi_net_num_layers(const mdfi_net *net);
mdfi_status mdfi_net_layer_info(const mdfi_net *net, int index, mdfi_layer_info *info);
mdfi_status mdfi_net_layer_output(const mdfi_net *net, int index, const float **data,
                                  size_t *count);
mdfi_status mdfi_net_output(const mdfi_net *net, const float **data, size_t *count);
const char *mdfi_net_warnings(const mdfi_net *net);
int mdfi_net_is_fixed(const mdfi_net *net);
typedef struct {
    int out_bits, out_frac;
    int in_bits, in_frac;
    int w_bits, w_frac;
    const char *kernel;
    int w_scale;
} mdfi_layer_format;
mdfi_status mdfi_net_layer_format(const mdfi_net *net, int index, mdfi_layer_format *fmt);
mdfi_status mdfi_net_layer_output_int(const mdfi_net *net, int index, const void **data,
                                      size_t *count, int *bits, int *frac);
mdfi_status mdfi_net_set_profile(mdfi_net *net, int on);
double mdfi_net_layer_time(const mdfi_net *net, int index);
mdfi_status mdfi_image_read(const char *path, mdfi_image *img, mdfi_errbuf *err);
const char *mdfi_image_sniff(const void *head, size_t n);
mdfi_status mdfi_image_decode(const void *data, size_t size, const char *name,
                              mdfi_image *img, mdfi_errbuf *err);
mdfi_status mdfi_image_decode_pixels(const void *data, size_t size, const char *name,
                                     unsigned char **pixels, int *w, int *h, int *c,
                                     mdfi_errbuf *err);
void mdfi_pixels_free(unsigned char *pixels);
mdfi_status mdfi_image_from_bytes(const unsigned char *pixels, int w, int h, int c,
                                  mdfi_image *img, mdfi_errbuf *err);
void mdfi_image_free(mdfi_image *img);
mdfi_status mdfi_letterbox(const mdfi_image *img, int net_w, int net_h, float *out,
                           mdfi_errbuf *err);
mdfi_status mdfi_net_detect(mdfi_net *net, int im_w, int im_h, float thresh, float nms,
                            const mdfi_detection **dets, int *count);
"""


def build_static_library():
    """Runs make for the static library the extension links."""
    jobs = str(os.cpu_count() or 2)
    subprocess.run(["make", "-s", "-j" + jobs, f"BUILD={BUILD}", "lib"], cwd=ROOT, check=True)
    return BUILD / "libmdfi.a"


ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "mdfi._mdfi_cffi",
    '#include "mdfi.h"',
    include_dirs=[str(ROOT / "csrc" / "include")],
    extra_objects=[str(BUILD / "libmdfi.a")],
    libraries=["m", "pthread"],
)

if __name__ == "__main__":
    build_static_library()
    ffibuilder.compile(tmpdir=str(BUILD), verbose=False)
