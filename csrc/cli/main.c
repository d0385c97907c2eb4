/* mdfi: run Darknet networks from the command line. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "mdfi " MDFI_VERSION " - Micro Darknet For Inference\n"
            "usage:\n"
            "  mdfi detect CFG WEIGHTS IMAGE [--thresh 0.5] [--nms 0.45] [--names FILE]\n"
            "              [--data FILE.data] [--json]\n"
            "  mdfi detect CFG WEIGHTS -|FIFO|DEVICE [--every N] [--max-frames N] [...]\n"
            "              frames of MJPEG or PNM (--stream: from a file)\n"
            "  mdfi detector test DATA CFG WEIGHTS IMAGE [-thresh T]   (Darknet's form)\n"
            "  mdfi classify CFG WEIGHTS IMAGE [--top 5] [--names FILE] [--json]\n"
            "  mdfi info CFG [WEIGHTS]\n"
            "  mdfi bench CFG [WEIGHTS] [--runs 10] [--bytes]\n"
            "common options: --threads N, --kernel ref|avx2|avx512|neon|auto,\n"
            "  --policy none|all|branchy|entropy-predictor|exit-predictor (early exits)\n"
            "images: JPEG or binary PNM (P5/P6).  MDFI_KERNEL, MDFI_BINARY_KERNEL,\n"
            "MDFI_BINARY_FUSE=0|1|auto and MDFI_WINOGRAD=0|1|2|3|auto set the kernel paths,\n"
            "binary fusion and Winograd 3x3 convolutions.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("mdfi %s\n", MDFI_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "detect"))
        return cmd_detect(argc - 2, argv + 2);
    if (!strcmp(argv[1], "detector"))
        return cmd_detector(argc - 2, argv + 2);
    if (!strcmp(argv[1], "classify"))
        return cmd_classify(argc - 2, argv + 2);
    if (!strcmp(argv[1], "info"))
        return cmd_info(argc - 2, argv + 2);
    if (!strcmp(argv[1], "bench"))
        return cmd_bench(argc - 2, argv + 2);
    fprintf(stderr, "mdfi: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
