/* Every limit MDFI puts on a size it reads from a file: cfg text, weights,
 * .qweights, images.  A value past one is refused with an error naming the
 * file (and line or layer) before anything of that size is allocated.
 *
 * The limits are far above any real network or photo (the largest Darknet
 * cfgs have a few hundred layers of at most a few thousand filters); they
 * exist so that a malformed or hostile file cannot make MDFI allocate
 * gigabytes, overflow an int, or run for hours.  docs/limits.md lists them
 * with the reason for each; tests/test_limits.py keeps the two in step.
 * Sizes that a file also states (the weights a cfg needs, a .qweights
 * record's length, a PNM's pixels) are further checked against the file's
 * own length. */
#ifndef MDFI_BASE_LIMITS_H
#define MDFI_BASE_LIMITS_H

/* A plain-number limit as text, for messages: "1.." MDFI_LIMIT_STR(X) */
#define MDFI_LIMIT_STR(x) MDFI_LIMIT_STR_(x)
#define MDFI_LIMIT_STR_(x) #x

/* cfg text */
#define MDFI_LIMIT_CFG_BYTES (16u << 20)      /* a cfg file, read whole */
#define MDFI_LIMIT_SECTIONS 65536             /* [sections] per cfg: layers + [net] */
#define MDFI_LIMIT_KEYS 256                   /* key=value lines per section */

/* network shapes */
#define MDFI_LIMIT_NET_DIM 65536              /* [net] width, height, channels */
#define MDFI_LIMIT_TENSOR (1LL << 30)         /* elements of the input or any layer output */
#define MDFI_LIMIT_FILTERS 65536              /* filters of a convolution */
#define MDFI_LIMIT_KERNEL 64                  /* conv size, strides, padding, dilation; upsample stride */
#define MDFI_LIMIT_POOL 256                   /* maxpool size, stride, padding */
#define MDFI_LIMIT_CONNECTED_OUTPUTS (1 << 24)  /* [connected] output= */
#define MDFI_LIMIT_CONNECTED_WEIGHTS (1LL << 31)  /* [connected] inputs x outputs; [local], [convolutional] weights */
#define MDFI_LIMIT_BINARY_TAPS (1LL << 24)    /* [dualpath] channels x size^2: exact in float */
#define MDFI_LIMIT_BINARY_CHANNELS 65535      /* input channels of a binary conv */
#define MDFI_LIMIT_XNOR_SUM (1LL << 28)       /* 3 x channels x size^2 (XNOR): inside int32 */
#define MDFI_LIMIT_FRAC_TAPS (1LL << 22)      /* [fracconv] channels x levels x size^2 */
#define MDFI_LIMIT_INPUTS 8                   /* layers one [route] (or any layer) reads */
#define MDFI_LIMIT_ANCHORS 64                 /* [yolo] num= and mask= entries */
#define MDFI_LIMIT_CLASSES 100000             /* [yolo] classes= */
#define MDFI_LIMIT_LEVELS 256                 /* [fracconv] thermometer levels= */
#define MDFI_LIMIT_EXIT_LAYERS 4096           /* [exit] layers= (its branch) */
#define MDFI_LIMIT_EXIT_HIDDEN 4096           /* [exit] hidden= units of a predictor */
#define MDFI_LIMIT_EXIT_POOL 16               /* [exit] pool= (the predictor's pooled grid) */
#define MDFI_LIMIT_EXIT_WEIGHTS (1LL << 26)   /* [exit] features x hidden: a light predictor */
#define MDFI_LIMIT_THREADS 256                /* mdfi_net_set_threads */

/* weights */
#define MDFI_LIMIT_QW_LAYERS (1u << 20)       /* layers a .qweights header may declare */

/* images */
#define MDFI_LIMIT_IMAGE_PIXELS (1L << 28)    /* width x height of a decoded image */
#define MDFI_LIMIT_JPEG_SCANS 1000            /* a real progressive JPEG has a few dozen */
/* A JPEG codes each 8x8 block of a full-resolution component in at least one
 * bit (a DC code; a progressive file's EOB runs cover AC only), so a file of
 * n bytes holds at most 512 n pixels; 4096 n leaves room for a file whose
 * only complete scans are of subsampled components. */
#define MDFI_LIMIT_JPEG_PIXELS_PER_BYTE 4096

#endif
