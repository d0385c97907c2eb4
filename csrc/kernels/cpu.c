/* CPU feature detection.  Computed on every call (a few cpuid/getauxval
 * calls) so there is no global state to initialise or race on. */
#include "kernels/cpu.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* xgetbv by hand: the intrinsic would need -mxsave on this file. */
static unsigned long long read_xcr0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

/* AMD family 19h (Zen 3 and 4; of these only Zen 4 has AVX-512) executes a
 * 512-bit operation as two 256-bit halves. */
static int zmm_halves(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d) || b != 0x68747541u || d != 0x69746e65u ||
        c != 0x444d4163u)   /* "AuthenticAMD" */
        return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    unsigned family = (a >> 8) & 0xf;
    if (family == 0xf)
        family += (a >> 20) & 0xff;
    return family == 0x19;
}

unsigned mdfi_cpu_features(void)
{
    unsigned a, b, c, d, f = 0;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d))
        return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if ((c >> 23) & 1)
        f |= MDFI_CPU_POPCNT;
    /* The CPU may support AVX while the OS does not save its registers. */
    unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    int os_ymm = (xcr0 & 0x6) == 0x6;        /* XMM | YMM */
    int os_zmm = (xcr0 & 0xe6) == 0xe6;      /* ... | opmask | ZMM_Hi256 | Hi16_ZMM */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return f;
    if (fma && avx && os_ymm && ((b >> 5) & 1))
        f |= MDFI_CPU_AVX2;
    /* F (16), DQ (17), BW (30), VL (31). */
    unsigned need = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);
    if ((f & MDFI_CPU_AVX2) && os_zmm && (b & need) == need) {
        f |= MDFI_CPU_AVX512;
        if ((c >> 11) & 1)
            f |= MDFI_CPU_VNNI;
        if ((c >> 14) & 1)
            f |= MDFI_CPU_VPOPCNT;
        if (zmm_halves())
            f |= MDFI_CPU_ZMM_HALVES;
    }
    return f;
}

#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#define MDFI_HWCAP_ASIMDDP (1ul << 20)   /* asm/hwcap.h value; not in old headers */

unsigned mdfi_cpu_features(void)
{
    unsigned f = MDFI_CPU_NEON;   /* Advanced SIMD is mandatory on AArch64 */
    if (getauxval(AT_HWCAP) & MDFI_HWCAP_ASIMDDP)
        f |= MDFI_CPU_DOTPROD;
    return f;
}

#elif defined(__arm__) && defined(__linux__)
#include <sys/auxv.h>
#define MDFI_HWCAP_ARM_NEON (1ul << 12)
#define MDFI_HWCAP_ARM_VFPV4 (1ul << 16)

/* The NEON files are built with -mfpu=neon-vfpv4 (fused multiply-add), so
 * NEON-only cores without VFPv4 (Cortex-A8/A9) must use the reference. */
unsigned mdfi_cpu_features(void)
{
    unsigned long need = MDFI_HWCAP_ARM_NEON | MDFI_HWCAP_ARM_VFPV4;
    return (getauxval(AT_HWCAP) & need) == need ? MDFI_CPU_NEON : 0;
}

#elif defined(__aarch64__)
unsigned mdfi_cpu_features(void)
{
    return MDFI_CPU_NEON;
}

#else
unsigned mdfi_cpu_features(void)
{
    return 0;
}
#endif

static const char isa_names[MDFI_ISA_COUNT][7] = {"ref", "avx2", "avx512", "neon"};

const char *mdfi_isa_name(mdfi_isa isa)
{
    return (unsigned)isa < MDFI_ISA_COUNT ? isa_names[isa] : "?";
}

int mdfi_isa_parse(const char *name, mdfi_isa *isa)
{
    for (int i = 0; name && i < MDFI_ISA_COUNT; ++i)
        if (!strcmp(name, isa_names[i])) {
            *isa = (mdfi_isa)i;
            return 0;
        }
    return -1;
}

int mdfi_isa_available(mdfi_isa isa)
{
    switch (isa) {
    case MDFI_ISA_REF:
        return 1;
#ifdef MDFI_HAVE_AVX2
    case MDFI_ISA_AVX2:
        return (mdfi_cpu_features() & MDFI_CPU_AVX2) != 0;
#endif
#ifdef MDFI_HAVE_AVX512
    case MDFI_ISA_AVX512:
        return (mdfi_cpu_features() & MDFI_CPU_AVX512) != 0;
#endif
#ifdef MDFI_HAVE_NEON
    case MDFI_ISA_NEON:
        return (mdfi_cpu_features() & MDFI_CPU_NEON) != 0;
#endif
    default:
        return 0;
    }
}

mdfi_isa mdfi_isa_best(void)
{
    static const mdfi_isa order[] = {MDFI_ISA_AVX512, MDFI_ISA_AVX2, MDFI_ISA_NEON};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; ++i)
        if (mdfi_isa_available(order[i]))
            return order[i];
    return MDFI_ISA_REF;
}
