/* mdfi detect on a stream: frame after frame from stdin ("-"), a FIFO, a
 * device or (--stream) a file of concatenated JPEG or PNM images, with the
 * network loaded once.  One output per frame, flushed at once: a JSON line
 * with --json, else Darknet's text under a "frame N" heading.
 *
 * Memory stays constant: the splitter's one buffer (io/stream.c), the
 * float image (kept while the frame size repeats) and the network input
 * are reused; the decoder's pixels are freed after each frame.  A frame of
 * the network's size into a network that takes bytes (a fixed-point first
 * layer) goes in as its bytes, with no float image or input at all: the
 * letterbox of a same-size image is the image itself.
 * A bad frame is reported on stderr with its index and skipped; a read
 * error ends the stream.  Exit status: 0, or 1 if any frame failed. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "io/image.h"
#include "io/stream.h"

typedef struct {
    mdfi_net *net;
    const cli_args *a;
    char **names;
    int n_names;
    mdfi_shape in_shape;
    float *input;           /* the letterboxed network input, reused */
    unsigned char *px;      /* a network-size frame's bytes, CHW (takes_bytes only) */
    mdfi_image img;         /* the decoded frame, reused while the size repeats */
} stream_run;

/* Decodes, letterboxes, runs and prints one frame; 0, or 1 after a
 * message naming the frame. */
static int one_frame(stream_run *r, const char *name, const mdfi_frame *fr)
{
    char label[256];
    snprintf(label, sizeof label, "%s: frame %ld", name, fr->index);
    mdfi_errbuf err;
    unsigned char *px = NULL;
    int w = 0, h = 0, c = 0;
    const double t0 = cli_now_ms();
    const mdfi_shape s = r->in_shape;
    mdfi_status st = mdfi_image_decode_pixels(fr->data, fr->size, label, &px, &w, &h, &c, &err);
    const size_t plane = (size_t)s.w * (size_t)s.h;
    const int bytes = st == MDFI_OK && r->px && w == s.w && h == s.h;
    for (int k = 0; bytes && k < 3; ++k)   /* HWC -> CHW (grey: each plane the same) */
        for (size_t i = 0; i < plane; ++i)
            r->px[(size_t)k * plane + i] = px[i * (size_t)c + (c == 3 ? k : 0)];
    if (!bytes && st == MDFI_OK && !r->input &&
        !(r->input = malloc(3 * plane * sizeof *r->input))) {   /* the first other frame */
        mdfi_pixels_free(px);
        fprintf(stderr, "mdfi: error: %s: out of memory\n", label);
        return 1;
    }
    if (bytes) {
        mdfi_pixels_free(px);
    } else if (st == MDFI_OK) {
        st = mdfi_image_fill(px, w, h, c, &r->img, &err);
        mdfi_pixels_free(px);
    }
    if (st == MDFI_OK && !bytes)
        st = mdfi_letterbox(&r->img, s.w, s.h, r->input, &err);
    if (st != MDFI_OK) {
        fprintf(stderr, "mdfi: error: %s\n", err.msg);
        return 1;
    }
    /* grey network: the mean (cli_load_input) */
    for (size_t i = 0; !bytes && s.c == 1 && i < plane; ++i)
        r->input[i] = (r->input[i] + r->input[plane + i] + r->input[2 * plane + i]) / 3.f;
    const double t1 = cli_now_ms();
    const mdfi_detection *d;
    int n;
    const size_t size = mdfi_net_input_size(r->net);
    if ((bytes ? mdfi_net_forward_bytes(r->net, r->px, size, -1)
               : mdfi_net_forward(r->net, r->input, size)) != MDFI_OK ||
        mdfi_net_detect(r->net, w, h, r->a->thresh, r->a->nms, &d, &n) != MDFI_OK) {
        fprintf(stderr, "mdfi: error: %s: %s\n", label, mdfi_net_last_error(r->net));
        return 1;
    }
    const double t2 = cli_now_ms();
    if (r->a->json)
        printf("{\"frame\": %ld, \"width\": %d, \"height\": %d, \"decode_ms\": %.3f, "
               "\"forward_ms\": %.3f, \"detections\": ", fr->index, w, h, t1 - t0, t2 - t1);
    else
        printf("%s: Predicted in %.1f milliseconds.\n", label, t2 - t1);
    cli_print_detections(d, n, r->names, r->n_names, r->a->json);
    if (r->a->json)
        printf("}\n");
    fflush(stdout);   /* one frame's result at once, down a pipe too */
    return 0;
}

int cli_detect_stream(mdfi_net *net, const cli_args *a, char **names, int n_names)
{
    stream_run r = {net, a, names, n_names, {0, 0, 0}, NULL, NULL, {0, 0, 0, NULL}};
    const char *path = a->pos[2];
    const int std_in = !strcmp(path, "-");
    const char *name = std_in ? "<stdin>" : path;
    mdfi_net_input_shape(net, &r.in_shape);
    if (r.in_shape.c != 3 && r.in_shape.c != 1) {
        fprintf(stderr, "mdfi: error: the network takes %d channels; images give 3 (or 1: "
                "grey)\n", r.in_shape.c);
        return 1;
    }
    FILE *f = std_in ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "mdfi: error: %s: cannot open\n", path);
        return 1;
    }
    mdfi_stream *s = NULL;
    mdfi_errbuf err;
    int failed = mdfi_stream_open(&s, f, name, 0, &err) != MDFI_OK;
    if (failed)
        fprintf(stderr, "mdfi: error: %s\n", err.msg);
    else if (mdfi_net_takes_bytes(net) && r.in_shape.c == 3 &&
             !(r.px = malloc(mdfi_net_input_size(net)))) {
        fprintf(stderr, "mdfi: error: out of memory\n");
        failed = 1;
    }
    const int started = !failed;
    long ran = 0;
    while (started && (!a->max_frames || ran < a->max_frames)) {
        mdfi_frame fr;
        mdfi_status st = mdfi_stream_next(s, &fr, &err);
        if (st != MDFI_OK) {
            fprintf(stderr, "mdfi: error: %s\n", err.msg);
            failed = 1;
            if (st == MDFI_ERR_IMAGE)   /* a bad frame: the splitter has resynchronised */
                continue;
            break;
        }
        if (fr.skipped)
            fprintf(stderr, "mdfi: warning: %s: %zu bytes that start no JPEG or PNM frame "
                    "skipped%s\n", name, fr.skipped, fr.size ? "" : " at the end");
        if (!fr.size)
            break;
        if (fr.index % a->every)
            continue;
        failed |= one_frame(&r, name, &fr);
        ++ran;
    }
    mdfi_stream_close(s);
    if (!std_in)
        fclose(f);
    free(r.input);
    free(r.px);
    mdfi_image_free(&r.img);
    return failed;
}
