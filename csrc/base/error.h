/* Error reporting: fill a message buffer and return a status in one line. */
#ifndef MDFI_CORE_ERROR_H
#define MDFI_CORE_ERROR_H

#include <stddef.h>
#include "mdfi.h"

#if defined(__GNUC__)
#define MDFI_PRINTF(a, b) __attribute__((format(printf, a, b)))
/* Run-once code (prepare, packing once, parsing) in files built for speed:
 * gcc optimizes a cold function for size and places it apart from hot code. */
#define MDFI_COLD __attribute__((cold))
#else
#define MDFI_PRINTF(a, b)
#define MDFI_COLD
#endif

/* Returns the status of x from the calling function unless it is MDFI_OK. */
#define MDFI_CHECK(x) do { mdfi_status st_ = (x); if (st_ != MDFI_OK) return st_; } while (0)

/* Writes the formatted message into err (if not NULL) and returns st. */
mdfi_status mdfi_fail(mdfi_errbuf *err, mdfi_status st, const char *fmt, ...) MDFI_PRINTF(3, 4);

#endif
