/* The mdfi program's shared pieces: option parsing, network loading, output. */
#ifndef MDFI_CLI_CLI_H
#define MDFI_CLI_CLI_H

#include <stdio.h>

#include "mdfi.h"

typedef struct {
    const char *pos[4];     /* positional arguments */
    int n_pos;
    float thresh, nms;
    int json, threads, runs, top;
    const char *kernel, *names, *policy, *data;
    int every, max_frames, stream;   /* detect on a stream (cmd_stream.c) */
    int bytes;              /* bench: 8-bit input (mdfi_net_forward_bytes) */
} cli_args;

/* Parses argv after the command name; returns 0, or prints why and returns -1. */
int cli_parse(int argc, char **argv, cli_args *a);
/* cfg + optional weights -> prepared net; prints the error and returns NULL. */
mdfi_net *cli_open_net(const char *cfg, const char *weights, const cli_args *a);
/* Build options from MDFI_KERNEL, MDFI_BINARY_KERNEL, MDFI_BINARY_FUSE and MDFI_WINOGRAD;
 * NULL, or a message naming a bad value. */
const char *cli_env_options(mdfi_options *opt);
/* Reads an image and letterboxes it to the net input; returns NULL on error. */
float *cli_load_input(mdfi_net *net, const char *path, mdfi_image *img);
/* Class names, one a line; returns count or -1.  Missing file -> message. */
int cli_read_names(const char *path, char ***names);
void cli_free_names(char **names, int n);
/* mdfi detect's names: --names, --data, the cfg's names=, files beside the
 * cfg (names.c); count, or -1 after printing why. */
int cli_detect_names(const cli_args *a, const char *cfg, char ***names);
/* Detections as Darknet prints them ("dog: 57%" lines), or as the JSON list. */
void cli_print_detections(const mdfi_detection *d, int n, char **names, int n_names, int json);
/* mdfi detect on a stream of frames (IMAGE "-", a FIFO or device, or --stream):
 * 0, or 1 if any frame or the stream failed. */
int cli_detect_stream(mdfi_net *net, const cli_args *a, char **names, int n_names);
void cli_json_string(FILE *f, const char *s);
double cli_now_ms(void);
long cli_peak_rss_kb(void);

int cmd_detect(int argc, char **argv);
/* Darknet's form: detector test DATA CFG WEIGHTS IMAGE [-thresh T]. */
int cmd_detector(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* The exits of a network with [exit] layers, and each path's MACs (info). */
void cli_print_exits(mdfi_net *net);

#endif
