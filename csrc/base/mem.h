/* 64-byte aligned allocation (C99 has no aligned_alloc). */
#ifndef MDFI_CORE_MEM_H
#define MDFI_CORE_MEM_H

#include <stddef.h>

void *mdfi_aligned_alloc(size_t bytes);   /* NULL on failure or overflow */
void mdfi_aligned_free(void *p);
/* A malloc'd copy of s, or NULL (strdup is not C99). */
char *mdfi_strdup(const char *s);

#endif
