# MDFI build: libmdfi.a, libmdfi.so and the mdfi program.
#   make                                   native build into build/<triple>/
#   make CROSS=aarch64-linux-gnu-          Raspberry Pi 64-bit (static mdfi)
#   make CROSS=arm-linux-gnueabihf-        Raspberry Pi 32-bit (static mdfi)
#   make SANITIZE=1                        ASan+UBSan build into build/<triple>-san/
#   make THREADS=0                         no pthreads (single-threaded)
#   make fuzz                              libFuzzer targets (clang) into build/fuzz/
#   make SANITIZE=1 fuzz-loop              the same targets in the built-in mutation loop
#                                          (any compiler) into build/<triple>-san/fuzz/
# Kernels for every ISA of the target are built, each file with its own flags
# (by name: x86/*_avx2.c, *_avx512.c, *_avx512vnni.c, *_avx512vpopcnt.c (with VNNI), *_popcnt.c, arm/*.c,
# arm/*_dotprod.c: AArch64 only, with +dotprod);
# the CPU's features pick one at run time (MDFI_KERNEL forces one).

CROSS ?=
CC := $(CROSS)gcc
AR := $(CROSS)ar
STRIP := $(CROSS)strip
TRIPLE := $(shell $(CC) -dumpmachine)
SANITIZE ?= 0
THREADS ?= 1
OPT ?= -O2

ifeq ($(SANITIZE),1)
BUILD ?= build/$(TRIPLE)-san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g
else
BUILD ?= build/$(TRIPLE)
# C99 with no exceptions and no thread cancellation never unwinds: no unwind
# tables (about 20 KB of the program)
SANFLAGS := -fno-asynchronous-unwind-tables -fno-unwind-tables
endif

CFLAGS_BASE := -std=c99 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
    -D_POSIX_C_SOURCE=200809L -fPIC -Icsrc/include -Icsrc $(OPT) $(SANFLAGS) \
    -ffunction-sections -fdata-sections
LDLIBS := -lm
ifeq ($(THREADS),1)
CFLAGS_BASE += -DMDFI_THREADS=1 -pthread
LDLIBS += -pthread
endif
CFLAGS_BASE += $(EXTRA_CFLAGS)

PORTABLE_SRC := $(wildcard csrc/base/*.c csrc/net/*.c csrc/layers/*.c csrc/io/*.c csrc/detect/*.c \
    csrc/kernels/*.c csrc/kernels/ref/*.c)
CLI_SRC := $(wildcard csrc/cli/*.c)

ifneq (,$(findstring x86_64,$(TRIPLE)))
ISA_AVX2_SRC := $(wildcard csrc/kernels/x86/*_avx2.c)
ISA_AVX512_SRC := $(wildcard csrc/kernels/x86/*_avx512.c)
ISA_VNNI_SRC := $(wildcard csrc/kernels/x86/*_avx512vnni.c)
ISA_VPOPCNT_SRC := $(wildcard csrc/kernels/x86/*_avx512vpopcnt.c)
ISA_POPCNT_SRC := $(wildcard csrc/kernels/x86/*_popcnt.c)
endif
ifneq (,$(findstring aarch64,$(TRIPLE)))
ISA_NEON_SRC := $(filter-out %_dotprod.c,$(wildcard csrc/kernels/arm/*.c))
ISA_DOTPROD_SRC := $(wildcard csrc/kernels/arm/*_dotprod.c)
NEON_FLAGS :=
LDSTATIC := -static
endif
ifneq (,$(findstring arm-linux-gnueabihf,$(TRIPLE)))
ISA_NEON_SRC := $(filter-out %_dotprod.c,$(wildcard csrc/kernels/arm/*.c))
NEON_FLAGS := -mfpu=neon-vfpv4 -mfloat-abi=hard
CFLAGS_BASE += -march=armv7-a -mfpu=vfpv3-d16 -mfloat-abi=hard
LDSTATIC := -static
endif
ifeq ($(SANITIZE),1)
LDSTATIC :=
endif

OBJ_PORTABLE := $(PORTABLE_SRC:%.c=$(BUILD)/obj/%.o)
OBJ_AVX2 := $(ISA_AVX2_SRC:%.c=$(BUILD)/obj/%.o)
OBJ_AVX512 := $(ISA_AVX512_SRC:%.c=$(BUILD)/obj/%.o)
OBJ_VNNI := $(ISA_VNNI_SRC:%.c=$(BUILD)/obj/%.o)
OBJ_VPOPCNT := $(ISA_VPOPCNT_SRC:%.c=$(BUILD)/obj/%.o)
OBJ_NEON := $(ISA_NEON_SRC:%.c=$(BUILD)/obj/%.o)
OBJ_DOTPROD := $(ISA_DOTPROD_SRC:%.c=$(BUILD)/obj/%.o)
OBJ_POPCNT := $(ISA_POPCNT_SRC:%.c=$(BUILD)/obj/%.o)
LIB_OBJ := $(OBJ_PORTABLE) $(OBJ_AVX2) $(OBJ_AVX512) $(OBJ_VNNI) $(OBJ_VPOPCNT) $(OBJ_NEON) \
    $(OBJ_DOTPROD) $(OBJ_POPCNT)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)

ISA_DEFS := $(if $(OBJ_AVX2),-DMDFI_HAVE_AVX2=1) $(if $(OBJ_AVX512),-DMDFI_HAVE_AVX512=1) \
    $(if $(ISA_VNNI_SRC),-DMDFI_HAVE_AVX512VNNI=1) $(if $(ISA_VPOPCNT_SRC),-DMDFI_HAVE_AVX512VPOPCNT=1) \
    $(if $(OBJ_NEON),-DMDFI_HAVE_NEON=1) $(if $(OBJ_DOTPROD),-DMDFI_HAVE_DOTPROD=1) \
    $(if $(OBJ_POPCNT),-DMDFI_HAVE_POPCNT=1)

.PHONY: all lib clean tests
all: $(BUILD)/libmdfi.a $(BUILD)/libmdfi.so $(BUILD)/mdfi
lib: $(BUILD)/libmdfi.a

# Objects depend on a stamp named after the flags, so a new ISA file (a new
# MDFI_HAVE_* define) or other flags rebuild everything instead of mixing;
# and on this file, whose per-object flags (below) the stamp cannot see.
FLAGS_STAMP := $(BUILD)/flags-$(shell echo '$(CC) $(CFLAGS_BASE) $(ISA_DEFS)' | cksum | cut -d' ' -f1)
THIS_MAKEFILE := $(firstword $(MAKEFILE_LIST))
$(FLAGS_STAMP):
	@mkdir -p $(dir $@)
	@rm -f $(BUILD)/flags-*
	@touch $@

$(BUILD)/obj/%.o: %.c $(FLAGS_STAMP) $(THIS_MAKEFILE)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(ISA_DEFS) -MMD -MP -c $< -o $@

# Everything but the kernels is built for size (the program must stay small:
# < 280 KB stripped); the kernels' drivers and packers keep -O2, ISA files -O3.
# Built for size too: cpu.c (feature detection, run once per network), sgemm.c (the
# fp32 driver: its packing is a small share of a convolution, and yolov3-tiny measured
# no slower), activations.c (the activations no GEMM epilogue fuses: yolo's logistic,
# mish, swish; their exp/log calls dominate) and kernels/ref/ (the fallback of CPUs
# without SIMD, and the check MDFI_KERNEL=ref runs).
OBJ_KERNEL_PORTABLE := $(filter-out %/cpu.o %/sgemm.o %/activations.o \
    $(BUILD)/obj/csrc/kernels/ref/%,\
    $(filter $(BUILD)/obj/csrc/kernels/%,$(OBJ_PORTABLE)))
$(filter-out $(OBJ_KERNEL_PORTABLE),$(OBJ_PORTABLE)) $(CLI_OBJ): CFLAGS_BASE += -Os
# Code that runs once per network, per command or per image header (the cfg, the
# build and plan, the weights readers, the command line, CPU detection, JPEG
# markers, PNM headers, stream framing), and the binary layers whose loops only
# call kernels ([fracconv], [dualpath], xnor=1 convolutions, [exit]: measured no
# slower), is built smaller still where the compiler knows -Oz (gcc >= 12,
# clang); elsewhere it stays -Os.
OZ := $(shell $(CC) -Oz -x c -c /dev/null -o /dev/null 2>/dev/null && echo -Oz || echo -Os)
OBJ_COLD := $(filter $(BUILD)/obj/csrc/base/% $(BUILD)/obj/csrc/net/% %/weights.o %/qweights.o \
    %/params.o %/qarrays.o $(addprefix %/layers/,common.o registry.o dp_common.o cost.o \
    dropout.o convolutional.o connected.o crop.o reorg.o region.o local.o route.o \
    fracconv.o dualpath.o conv_xnor.o exit.o) \
    %/kernels/cpu.o \
    $(addprefix %/io/,jpeg_markers.o pnm.o stream.o),$(OBJ_PORTABLE)) $(CLI_OBJ)
$(OBJ_COLD): CFLAGS_BASE += $(OZ)
# The layer types' variant tables (48-byte structs of function pointers), the
# reference kernels' tables and the run-once code's data at their ABI
# alignment: x86-64 gcc aligns data of 32 bytes or more to 32, which padded
# each variant to 64 bytes of relocated data (docs/architecture.md, the size
# budget); none of these files loads its own tables with vector moves.
# (Size flags only where $(CC) takes them: clang, as `make fuzz` uses, has
# neither -malign-data nor -fno-align-jumps/-labels.)
cc_flags = $(foreach f,$(1),$(shell $(CC) -Werror $(f) -x c -c /dev/null -o /dev/null \
    2>/dev/null && echo $(f)))
ALIGN_DATA := $(call cc_flags,-malign-data=abi)
ifneq (,$(findstring x86_64,$(TRIPLE)))
$(filter $(BUILD)/obj/csrc/layers/% $(BUILD)/obj/csrc/kernels/%,$(OBJ_PORTABLE)) \
    $(OBJ_COLD) $(OBJ_AVX2) $(OBJ_AVX512) $(OBJ_VNNI): CFLAGS_BASE += $(ALIGN_DATA)
endif
# printf stays printf: gcc's puts/putchar for it are two more imports (PLT
# entries, symbols, relocations), about 150 bytes of the program
$(CLI_OBJ): CFLAGS_BASE += -fno-builtin-printf
$(OBJ_AVX2): CFLAGS_BASE += -mavx2 -mfma -O3
$(OBJ_AVX512): CFLAGS_BASE += -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma -mavx2 -O3
$(OBJ_VNNI): CFLAGS_BASE += -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni -mfma -mavx2 -O3
$(OBJ_VPOPCNT): CFLAGS_BASE += -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vpopcntdq -mavx512bitalg \
    -mavx512vnni -mavx2 -O3
$(OBJ_NEON): CFLAGS_BASE += $(NEON_FLAGS) -O3
$(OBJ_DOTPROD): CFLAGS_BASE += -march=armv8.2-a+dotprod -O3
$(OBJ_POPCNT): CFLAGS_BASE += -mpopcnt -O3
# -O2 where -O3's unrolled copies cost the program a 4 KB page and buy little:
# the [fracconv] AVX2 and VPOPCNT forms (a compare, a list, a popcount loop)
# and the POPCNT binary kernel (the fallback of x86 CPUs without AVX2)
$(BUILD)/obj/csrc/kernels/x86/dpath_avx2.o $(BUILD)/obj/csrc/kernels/x86/bgemm_popcnt.o \
    $(BUILD)/obj/csrc/kernels/x86/dpath_avx512vpopcnt.o: CFLAGS_BASE += -O2
# -Os for the AVX-512 packers: one short loop of compares and masked ORs,
# which -Os builds as -O2 does, 70 bytes smaller (the program's room)
$(BUILD)/obj/csrc/kernels/x86/dpath_avx512.o: CFLAGS_BASE += -Os
# -O2 for the AVX2 requantization epilogue of the integer GEMM: it runs once
# per output element, outside the K loop, and -O3 clones its loops for no
# measured speed.  With its row tails and rare shift modes off the vector
# loops (qgemm_epi_avx2.c) it went from 15.6 KB to 3.6 KB, the room the
# program needed (docs/architecture.md, the size budget).  -Os would halve it
# again but cost ~9 % of yolov3-tiny int8's time on an AVX2 EPYC.
$(BUILD)/obj/csrc/kernels/x86/qgemm_epi_avx2.o: \
    CFLAGS_BASE += -O2
# -O2 for the AVX2 fp32 gemv (N == 1): it streams A once, memory-bound for
# any large connected layer, and -O3's copies of its loops cost 2.5 KB.
$(BUILD)/obj/csrc/kernels/x86/sgemm_gemv_avx2.o: CFLAGS_BASE += -O2
# -O2, loops rolled: Winograd's on-the-fly weight transform runs once per chunk
# of weights, and the program has little room (docs/architecture.md).
$(BUILD)/obj/csrc/kernels/x86/wino_avx2.o: CFLAGS_BASE += -O2
# The element-wise loops ([shortcut]'s sum, leaky, relu) vectorized for the
# target's baseline SIMD (SSE2 on x86-64, NEON on aarch64): gcc's -O2 cost
# model leaves a loop of unknown length scalar, and with trapping math it
# will not divide the lanes a select then drops (MDFI never enables FP
# traps; the values are the same, tests/c/test_act.c checks them bit for bit).
$(BUILD)/obj/csrc/kernels/eltwise.o: CFLAGS_BASE += -O3 -fno-trapping-math
# No padding before loops and jump targets in the integer and binary GEMM
# drivers and the AVX2 requantization: their inner loops are the ISA
# micro-kernels' (-O3, aligned); measured no slower (docs/architecture.md,
# the size budget), about 600 bytes smaller.  Nor in the [dualpath] /
# [fracconv] element loops and the POPCNT binary kernel (-O2 files, 192 bytes),
# nor in bwindow.c ([fracconv]'s thermometer stem, 77 bytes).
NOALIGN := $(call cc_flags,-fno-align-loops -fno-align-jumps -fno-align-labels)
NOALIGN_OBJ := $(addprefix $(BUILD)/obj/csrc/kernels/,bgemm.o qgemm.o x86/qgemm_epi_avx2.o \
    dpath.o x86/sgemm_gemv_avx2.o x86/dpath_avx2.o x86/bgemm_popcnt.o x86/dpath_avx512vpopcnt.o \
    x86/dpath_avx512.o winograd.o bwindow.o)
$(NOALIGN_OBJ): CFLAGS_BASE += $(NOALIGN)
# The same files but qgemm.o (whose int8 drivers measured 3 % slower for it on
# a small network) without padding before functions either: 450 bytes, the
# room the AVX-512 ternary kernel for partial panels took (docs/architecture.md)
$(filter-out %/qgemm.o,$(NOALIGN_OBJ)): CFLAGS_BASE += $(call cc_flags,-fno-align-functions)

# swish and mish: one exponential per value bounds them, not the loop around it
$(BUILD)/obj/csrc/kernels/x86/act_avx2.o: CFLAGS_BASE += -Os

$(BUILD)/libmdfi.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/libmdfi.so: $(LIB_OBJ)
	$(CC) -shared $(SANFLAGS) -o $@ $^ $(LDLIBS)

# noseparate-code: one executable segment instead of page-padded R / R+X / R
# ones, which saves a page or two of padding in a program this small.
# pack-relative-relocs (DT_RELR), where the linker has it: a PIE program's
# relative relocations (pointers in its tables) packed into a bitmap instead
# of 24 bytes each, about 8 KB less; the loader must know DT_RELR (glibc >=
# 2.36; the static ARM programs have none to pack).
# The probe links *and runs* a program so: a linker that knows the flag next
# to an older glibc (binutils 2.38 with glibc 2.35) must not make a program
# that cannot start.  Cross builds cannot run the probe, so they go without.
RELR_PROBE := $(BUILD)/.relr-probe
RELR := $(shell mkdir -p $(BUILD) && printf 'int main(void){return 0;}\n' | $(CC) -x c - \
    -o $(RELR_PROBE) -Wl,--fatal-warnings -Wl,-z,pack-relative-relocs 2>/dev/null \
    && $(RELR_PROBE) && echo -Wl,-z,pack-relative-relocs; rm -f $(RELR_PROBE))
$(BUILD)/mdfi: $(CLI_OBJ) $(BUILD)/libmdfi.a
	$(CC) $(SANFLAGS) $(LDSTATIC) -Wl,--gc-sections -Wl,-z,noseparate-code $(RELR) -o $@ \
	    $(CLI_OBJ) $(BUILD)/libmdfi.a $(LDLIBS)

# C test drivers: tests/c/test_NAME.c -> $(BUILD)/tests/test_NAME
TEST_SRC := $(wildcard tests/c/test_*.c)
TEST_BIN := $(TEST_SRC:tests/c/%.c=$(BUILD)/tests/%)
tests: $(TEST_BIN)
$(BUILD)/tests/%: tests/c/%.c $(BUILD)/libmdfi.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(ISA_DEFS) $(LDSTATIC) -o $@ $< $(BUILD)/libmdfi.a $(LDLIBS)

# Fuzz targets, tests/fuzz/fuzz_NAME.c (docs/architecture.md#fuzzing).  With
# clang, `make fuzz` links each with libFuzzer into build/fuzz/fuzz_NAME, over
# a copy of the library built by clang with ASan+UBSan in build/fuzz/lib/.
# With any compiler, $(BUILD)/fuzz/fuzz_NAME runs the same target in the
# built-in mutation loop tests/fuzz/fuzz_main.c (the test suite runs these
# from the SANITIZE=1 build; `make fuzz-loop` builds them all).
FUZZ_CC ?= clang
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out tests/fuzz/fuzz_main.c,$(wildcard tests/fuzz/fuzz_*.c)))
.PHONY: fuzz fuzz-loop
fuzz-loop: $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_main.c $(BUILD)/libmdfi.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(ISA_DEFS) $(LDSTATIC) -o $@ $< tests/fuzz/fuzz_main.c \
	    $(BUILD)/libmdfi.a $(LDLIBS)

fuzz:
	$(MAKE) CC=$(FUZZ_CC) SANITIZE=1 BUILD=build/fuzz/lib EXTRA_CFLAGS=-fsanitize=fuzzer-no-link \
	    build/fuzz/lib/libmdfi.a
	$(MAKE) $(FUZZ_NAMES:%=build/fuzz/fuzz_%)
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/lib/libmdfi.a
	$(FUZZ_CC) -std=c99 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -Icsrc/include -Icsrc -O1 -g \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -o $@ \
	    $< build/fuzz/lib/libmdfi.a -lm -pthread

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
