#include "base/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/limits.h"

static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Darknet removes every whitespace character from a line before parsing. */
static size_t strip_ws(const char *in, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; ++i)
        if (!isspace((unsigned char)in[i]))
            out[k++] = in[i];
    out[k] = '\0';
    return k;
}

static mdfi_status add_section(mdfi_cfg *cfg, const char *type, int line, mdfi_errbuf *err)
{
    if (cfg->n_sec == MDFI_LIMIT_SECTIONS)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: more than "
                         MDFI_LIMIT_STR(MDFI_LIMIT_SECTIONS) " sections", cfg->name, line);
    if (cfg->n_sec == cfg->cap_sec) {
        int cap = cfg->cap_sec ? cfg->cap_sec * 2 : 16;
        mdfi_cfg_section *s = realloc(cfg->sec, (size_t)cap * sizeof *s);
        if (!s)
            return mdfi_fail(err, MDFI_ERR_NOMEM, "%s: out of memory", cfg->name);
        cfg->sec = s;
        cfg->cap_sec = cap;
    }
    mdfi_cfg_section *s = &cfg->sec[cfg->n_sec];
    memset(s, 0, sizeof *s);
    s->line = line;
    s->type = dup_range(type, strlen(type));
    if (!s->type)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "%s: out of memory", cfg->name);
    cfg->n_sec++;
    return MDFI_OK;
}

static mdfi_status add_kv(mdfi_cfg *cfg, const char *line_text, int line, mdfi_errbuf *err)
{
    mdfi_cfg_section *s = &cfg->sec[cfg->n_sec - 1];
    const char *eq = strchr(line_text, '=');
    if (!eq)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: expected key=value, got '%.60s'",
                         cfg->name, line, line_text);
    if (eq == line_text)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: empty key in '%.60s'", cfg->name,
                         line, line_text);
    if (s->n_kv == MDFI_LIMIT_KEYS)   /* the repeat check below is quadratic */
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: more than "
                         MDFI_LIMIT_STR(MDFI_LIMIT_KEYS) " keys in [%s]", cfg->name, line,
                         s->type);
    size_t klen = (size_t)(eq - line_text);
    int repeat = 0;    /* Darknet reads the first of a repeated key: the others are kept
                          only to be reported */
    for (int i = 0; i < s->n_kv && !repeat; ++i)
        repeat = strlen(s->kv[i].key) == klen && !strncmp(s->kv[i].key, line_text, klen);
    if (s->n_kv == s->cap_kv) {
        int cap = s->cap_kv ? s->cap_kv * 2 : 8;
        mdfi_cfg_kv *kv = realloc(s->kv, (size_t)cap * sizeof *kv);
        if (!kv)
            return mdfi_fail(err, MDFI_ERR_NOMEM, "%s: out of memory", cfg->name);
        s->kv = kv;
        s->cap_kv = cap;
    }
    mdfi_cfg_kv *kv = &s->kv[s->n_kv];
    kv->key = dup_range(line_text, klen);
    kv->value = dup_range(eq + 1, strlen(eq + 1));
    kv->line = line;
    kv->used = -repeat;
    if (!kv->key || !kv->value) {
        free(kv->key);
        free(kv->value);
        return mdfi_fail(err, MDFI_ERR_NOMEM, "%s: out of memory", cfg->name);
    }
    s->n_kv++;
    return MDFI_OK;
}

mdfi_status mdfi_cfg_parse(const char *text, const char *name, mdfi_cfg *cfg,
                           mdfi_errbuf *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->name = dup_range(name, strlen(name));
    if (!cfg->name)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory");
    size_t len = strlen(text);
    char *buf = malloc(len + 1);
    if (!buf)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "%s: out of memory", name);
    mdfi_status st = MDFI_OK;
    int line = 0;
    const char *p = text;
    while (*p && st == MDFI_OK) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        ++line;
        size_t k = strip_ws(p, n, buf);
        p += n + (eol ? 1 : 0);
        if (k == 0 || buf[0] == '#' || buf[0] == ';')
            continue;
        if (buf[0] == '[') {
            if (buf[k - 1] != ']' || k < 3) {
                st = mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: malformed section header '%.60s'",
                               name, line, buf);
                break;
            }
            buf[k - 1] = '\0';
            st = add_section(cfg, buf + 1, line, err);
        } else if (cfg->n_sec == 0) {
            st = mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: '%.60s' before the first [section]",
                           name, line, buf);
        } else {
            st = add_kv(cfg, buf, line, err);
        }
    }
    free(buf);
    if (st == MDFI_OK && cfg->n_sec == 0)
        st = mdfi_fail(err, MDFI_ERR_CFG, "%s: no sections (is this a Darknet cfg?)", name);
    if (st != MDFI_OK)
        mdfi_cfg_free(cfg);
    return st;
}

mdfi_status mdfi_read_text_file(const char *path, char **text, mdfi_errbuf *err)
{
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return mdfi_fail(err, MDFI_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    mdfi_status st = MDFI_OK;
    while (buf) {
        if (n + 1 >= cap) {
            if (cap >= MDFI_LIMIT_CFG_BYTES) {
                st = mdfi_fail(err, MDFI_ERR_CFG, "%s: larger than %u bytes, not a cfg",
                               path, MDFI_LIMIT_CFG_BYTES);
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                st = mdfi_fail(err, MDFI_ERR_IO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (!buf)
        return mdfi_fail(err, MDFI_ERR_NOMEM, "%s: out of memory", path);
    if (st != MDFI_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n)) {
        free(buf);
        return mdfi_fail(err, MDFI_ERR_CFG, "%s: contains NUL bytes, not a text cfg", path);
    }
    *text = buf;
    return MDFI_OK;
}

void mdfi_cfg_free(mdfi_cfg *cfg)
{
    for (int i = 0; i < cfg->n_sec; ++i) {
        mdfi_cfg_section *s = &cfg->sec[i];
        for (int j = 0; j < s->n_kv; ++j) {
            free(s->kv[j].key);
            free(s->kv[j].value);
        }
        free(s->kv);
        free(s->type);
    }
    free(cfg->sec);
    free(cfg->name);
    memset(cfg, 0, sizeof *cfg);
}

static mdfi_cfg_kv *find(mdfi_cfg_section *s, const char *key)
{
    for (int i = 0; i < s->n_kv; ++i)
        if (s->kv[i].used >= 0 && !strcmp(s->kv[i].key, key)) {
            s->kv[i].used = 1;
            return &s->kv[i];
        }
    return NULL;
}

int mdfi_cfg_word_in(const char *words, const char *s)
{
    const size_t n = strlen(s);
    for (const char *w = words; *w;) {
        size_t len = strcspn(w, " ");
        if (len == n && !memcmp(w, s, n))
            return 1;
        w += len + (w[len] == ' ');
    }
    return 0;
}

void mdfi_cfg_ignore(mdfi_cfg_section *s, const char *words)
{
    for (int i = 0; i < s->n_kv; ++i)
        if (s->kv[i].used >= 0 && mdfi_cfg_word_in(words, s->kv[i].key))
            s->kv[i].used = 1;
}

int mdfi_cfg_line(const mdfi_cfg_section *s, const char *key)
{
    for (int i = 0; i < s->n_kv; ++i)
        if (!strcmp(s->kv[i].key, key))
            return s->kv[i].line;
    return s->line;
}

const char *mdfi_cfg_str(mdfi_cfg_section *s, const char *key, const char *def)
{
    mdfi_cfg_kv *kv = find(s, key);
    return kv ? kv->value : def;
}

static int parse_int(const char *s, const char **end, int *out)
{
    errno = 0;
    char *e;
    long v = strtol(s, &e, 10);
    if (e == s || errno == ERANGE || v < INT_MIN || v > INT_MAX)
        return -1;
    *out = (int)v;
    *end = e;
    return 0;
}

static int parse_float(const char *s, const char **end, float *out)
{
    errno = 0;
    char *e;
    double v = strtod(s, &e);
    if (e == s || errno == ERANGE || !isfinite(v) || fabs(v) > 3.0e38)
        return -1;
    *out = (float)v;
    *end = e;
    return 0;
}

mdfi_status mdfi_cfg_int(const mdfi_cfg *cfg, mdfi_cfg_section *s, const char *key,
                         int def, int *out, mdfi_errbuf *err)
{
    mdfi_cfg_kv *kv = find(s, key);
    const char *end;
    if (!kv) {
        *out = def;
        return MDFI_OK;
    }
    /* a trailing "#..." is a comment: Darknet's atoi reads the number before it */
    if (parse_int(kv->value, &end, out) || (*end && *end != '#'))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: [%s] %s=%s is not an integer",
                         cfg->name, kv->line, s->type, key, kv->value);
    return MDFI_OK;
}

mdfi_status mdfi_cfg_int_required(const mdfi_cfg *cfg, mdfi_cfg_section *s,
                                  const char *key, int *out, mdfi_errbuf *err)
{
    mdfi_cfg_kv *kv = find(s, key);
    if (!kv)
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: [%s] needs the key '%s'", cfg->name,
                         s->line, s->type, key);
    kv->used = 0;
    return mdfi_cfg_int(cfg, s, key, 0, out, err);
}

mdfi_status mdfi_cfg_float(const mdfi_cfg *cfg, mdfi_cfg_section *s, const char *key,
                           float def, float *out, mdfi_errbuf *err)
{
    mdfi_cfg_kv *kv = find(s, key);
    const char *end;
    if (!kv) {
        *out = def;
        return MDFI_OK;
    }
    if (parse_float(kv->value, &end, out) || (*end && *end != '#'))
        return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: [%s] %s=%s is not a number",
                         cfg->name, kv->line, s->type, key, kv->value);
    return MDFI_OK;
}

/* Shared walk over "a,b,c"; kind selects int or float parsing. */
static mdfi_status list(const mdfi_cfg *cfg, mdfi_cfg_section *s, const char *key,
                        int *ivals, float *fvals, int max, int *n, mdfi_errbuf *err)
{
    mdfi_cfg_kv *kv = find(s, key);
    *n = 0;
    if (!kv)
        return MDFI_OK;
    const char *p = kv->value;
    while (*p) {
        const char *end;
        int bad = ivals ? parse_int(p, &end, &ivals[*n < max ? *n : max - 1])
                        : parse_float(p, &end, &fvals[*n < max ? *n : max - 1]);
        if (bad || (*end && *end != ',' && *end != '#'))
            return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: [%s] %s=%s: item %d is not a %s",
                             cfg->name, kv->line, s->type, key, kv->value, *n + 1,
                             ivals ? "integer" : "number");
        if (++*n > max)
            return mdfi_fail(err, MDFI_ERR_CFG, "%s:%d: [%s] %s has more than %d items",
                             cfg->name, kv->line, s->type, key, max);
        p = *end == ',' ? end + 1 : end + strlen(end);
    }
    return MDFI_OK;
}

mdfi_status mdfi_cfg_int_list(const mdfi_cfg *cfg, mdfi_cfg_section *s, const char *key,
                              int *vals, int max, int *n, mdfi_errbuf *err)
{
    return list(cfg, s, key, vals, NULL, max, n, err);
}

mdfi_status mdfi_cfg_float_list(const mdfi_cfg *cfg, mdfi_cfg_section *s, const char *key,
                                float *vals, int max, int *n, mdfi_errbuf *err)
{
    return list(cfg, s, key, NULL, vals, max, n, err);
}
