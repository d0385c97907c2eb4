/* Darknet cfg text → sections of key=value with line numbers.
 * Knows nothing of layers: typed getters report bad values by file:line. */
#ifndef MDFI_CORE_CFG_H
#define MDFI_CORE_CFG_H

#include "mdfi.h"

typedef struct {
    char *key, *value;
    int line;
    int used;             /* set by the getters; unused keys become warnings; -1: a repeat */
} mdfi_cfg_kv;

typedef struct {
    char *type;           /* section name without brackets */
    int line;
    mdfi_cfg_kv *kv;
    int n_kv, cap_kv;
} mdfi_cfg_section;

typedef struct {
    char *name;           /* file name for messages */
    mdfi_cfg_section *sec;
    int n_sec, cap_sec;
} mdfi_cfg;

mdfi_status mdfi_cfg_parse(const char *text, const char *name, mdfi_cfg *cfg,
                           mdfi_errbuf *err);
/* Reads a whole text file (NUL-terminated, limited to 16 MiB). */
mdfi_status mdfi_read_text_file(const char *path, char **text, mdfi_errbuf *err);
void mdfi_cfg_free(mdfi_cfg *cfg);

/* Getters: a missing key gives def; a malformed value is MDFI_ERR_CFG with
 * "file:line: key 'k' ...". */
mdfi_status mdfi_cfg_int(const mdfi_cfg *cfg, mdfi_cfg_section *s, const char *key,
                         int def, int *out, mdfi_errbuf *err);
mdfi_status mdfi_cfg_int_required(const mdfi_cfg *cfg, mdfi_cfg_section *s,
                                  const char *key, int *out, mdfi_errbuf *err);
mdfi_status mdfi_cfg_float(const mdfi_cfg *cfg, mdfi_cfg_section *s, const char *key,
                           float def, float *out, mdfi_errbuf *err);
/* The raw string, or def. */
const char *mdfi_cfg_str(mdfi_cfg_section *s, const char *key, const char *def);
/* Comma-separated lists; *n = 0 if the key is missing. */
mdfi_status mdfi_cfg_int_list(const mdfi_cfg *cfg, mdfi_cfg_section *s, const char *key,
                              int *vals, int max, int *n, mdfi_errbuf *err);
mdfi_status mdfi_cfg_float_list(const mdfi_cfg *cfg, mdfi_cfg_section *s, const char *key,
                                float *vals, int max, int *n, mdfi_errbuf *err);
/* Whether s is one of the space-separated words (a string, not a table of
 * pointers: tables of pointers are relocated data, which the program's size
 * pays for twice, docs/architecture.md). */
int mdfi_cfg_word_in(const char *words, const char *s);
/* Marks the keys among the space-separated words read (Darknet's training
 * keys: accepted, no warning). */
void mdfi_cfg_ignore(mdfi_cfg_section *s, const char *words);
/* Line of a key, or of the section header if missing. */
int mdfi_cfg_line(const mdfi_cfg_section *s, const char *key);

#endif
