/* CPU feature detection and kernel-path selection.
 *
 * One build runs on any CPU of its architecture: optimized kernels are
 * compiled with their own target flags and chosen at run time from the CPU's
 * features.  MDFI_KERNEL=ref|avx2|avx512|neon forces a path (an unavailable
 * one is an error, never a silent fallback). */
#ifndef MDFI_KERNELS_CPU_H
#define MDFI_KERNELS_CPU_H

typedef enum {
    MDFI_ISA_REF = 0,   /* portable C, the reference every variant is tested against */
    MDFI_ISA_AVX2 = 1,  /* x86-64 AVX2 + FMA */
    MDFI_ISA_AVX512 = 2,/* x86-64 AVX-512 F/BW/DQ/VL (+VNNI, VPOPCNTDQ flags below) */
    MDFI_ISA_NEON = 3,  /* ARM NEON (aarch64, or armv7 with NEON) */
    MDFI_ISA_COUNT = 4
} mdfi_isa;

/* Feature bits of the running CPU. */
enum {
    MDFI_CPU_AVX2 = 1 << 0,     /* AVX2 and FMA, with OS support for YMM state */
    MDFI_CPU_AVX512 = 1 << 1,   /* F, BW, DQ, VL, with OS support for ZMM state */
    MDFI_CPU_VNNI = 1 << 2,     /* AVX512_VNNI */
    MDFI_CPU_VPOPCNT = 1 << 3,  /* AVX512_VPOPCNTDQ */
    MDFI_CPU_POPCNT = 1 << 4,
    MDFI_CPU_NEON = 1 << 5,
    MDFI_CPU_DOTPROD = 1 << 6,  /* ARMv8.2 sdot/udot */
    MDFI_CPU_ZMM_HALVES = 1 << 7   /* AVX-512 run as two 256-bit halves: AMD family 19h
                                      (Zen 4), where some kernels pick 256-bit forms */
};

unsigned mdfi_cpu_features(void);

/* Name of an ISA ("ref", "avx2", "avx512", "neon"). */
const char *mdfi_isa_name(mdfi_isa isa);
/* Parses a name as above; returns 0 and sets *isa, or -1. */
int mdfi_isa_parse(const char *name, mdfi_isa *isa);
/* Whether this build contains the ISA's kernels and the CPU can run them. */
int mdfi_isa_available(mdfi_isa isa);
/* The best available ISA. */
mdfi_isa mdfi_isa_best(void);

#endif
