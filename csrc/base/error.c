#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>

mdfi_status mdfi_fail(mdfi_errbuf *err, mdfi_status st, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return st;
}

const char *mdfi_status_name(mdfi_status st)
{
    switch (st) {
    case MDFI_OK: return "ok";
    case MDFI_ERR_IO: return "io";
    case MDFI_ERR_CFG: return "cfg";
    case MDFI_ERR_WEIGHTS: return "weights";
    case MDFI_ERR_SHAPE: return "shape";
    case MDFI_ERR_NOMEM: return "nomem";
    case MDFI_ERR_ARG: return "arg";
    case MDFI_ERR_IMAGE: return "image";
    case MDFI_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown";
}
