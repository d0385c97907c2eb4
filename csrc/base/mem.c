#include "base/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

char *mdfi_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    return p ? memcpy(p, s, n) : NULL;
}

/* The original pointer is stored just below the aligned block. */
void *mdfi_aligned_alloc(size_t bytes)
{
    if (bytes > SIZE_MAX - 64 - sizeof(void *))
        return NULL;
    unsigned char *raw = malloc(bytes + 64 + sizeof(void *));
    if (!raw)
        return NULL;
    uintptr_t a = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
    ((void **)a)[-1] = raw;
    return (void *)a;
}

void mdfi_aligned_free(void *p)
{
    if (p)
        free(((void **)p)[-1]);
}
