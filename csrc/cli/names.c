/* Class names for mdfi detect, from where Darknet users keep them, first
 * found wins:
 *   1. --names FILE;
 *   2. --data FILE.data: its names= (and classes=, checked against the count;
 *      a .data file without names= goes on to 3);
 *   3. names= in the cfg's [net] section;
 *   4. <cfg stem>.names, then coco.names, beside the cfg;
 *   5. none: labels class_N, and one warning saying how to give names.
 * A relative names= path is opened as written, from the current directory,
 * as Darknet does; if it is not there, beside the file that names it (so a
 * model folder with its .data works from anywhere).  A source that is given
 * but unreadable is an error, never a silent fall-through. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cfg.h"
#include "cli/cli.h"

/* path as written if it is readable, else beside `beside` if readable
 * there; NULL if neither. */
static const char *resolve(const char *path, const char *beside, char *buf, size_t size)
{
    if (access(path, R_OK) == 0)
        return path;
    const char *slash = strrchr(beside, '/');
    if (path[0] == '/' || !slash)
        return NULL;
    snprintf(buf, size, "%.*s/%s", (int)(slash - beside), beside, path);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

static int read_from(const char *path, const char *key, const char *from, char ***names)
{
    char buf[4096];
    const char *p = resolve(path, from, buf, sizeof buf);
    if (!p) {
        fprintf(stderr, "mdfi: error: %s: %s=%s: no such readable file, as written or beside "
                "it\n", from, key, path);
        return -1;
    }
    return cli_read_names(p, names);
}

/* A Darknet .data file: key=value lines, whitespace removed wherever it is
 * (Darknet's strip), '#' and ';' comments.  Finds names= and classes=. */
static int read_data(const char *path, char *names, size_t size, int *classes)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "mdfi: error: %s: cannot open the .data file\n", path);
        return -1;
    }
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        size_t n = 0;
        for (char *q = line; *q; ++q)
            if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n')
                line[n++] = *q;
        line[n] = '\0';
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#' || line[0] == ';')
            continue;
        *eq = '\0';
        if (!strcmp(line, "names"))
            snprintf(names, size, "%s", eq + 1);
        else if (!strcmp(line, "classes"))
            *classes = (int)strtol(eq + 1, NULL, 10);   /* atoi, without its import */
    }
    fclose(f);
    return 0;
}

/* names= in the cfg's first section, or "" (a cfg that does not parse is
 * reported when the network loads). */
static void cfg_names(const char *cfg_path, char *out, size_t size)
{
    char *text = NULL;
    mdfi_cfg cfg = {0};
    mdfi_errbuf err;
    out[0] = '\0';
    if (mdfi_read_text_file(cfg_path, &text, &err) == MDFI_OK &&
        mdfi_cfg_parse(text, cfg_path, &cfg, &err) == MDFI_OK && cfg.n_sec > 0) {
        const char *v = mdfi_cfg_str(&cfg.sec[0], "names", NULL);
        if (v)
            snprintf(out, size, "%s", v);
    }
    mdfi_cfg_free(&cfg);
    free(text);
}

int cli_detect_names(const cli_args *a, const char *cfg, char ***names)
{
    char path[4096];
    *names = NULL;
    if (a->names)
        return cli_read_names(a->names, names);
    if (a->data) {
        int classes = 0;
        path[0] = '\0';
        if (read_data(a->data, path, sizeof path, &classes))
            return -1;
        if (path[0]) {
            int n = read_from(path, "names", a->data, names);
            if (n >= 0 && n < classes)
                fprintf(stderr, "mdfi: warning: %s: classes=%d, but its names file has %d "
                        "names: the others are labelled class_N\n", a->data, classes, n);
            return n;
        }
    }
    cfg_names(cfg, path, sizeof path);
    if (path[0])
        return read_from(path, "names", cfg, names);
    /* <stem>.names, then coco.names, beside the cfg */
    const char *slash = strrchr(cfg, '/'), *base = slash ? slash + 1 : cfg;
    const char *dot = strrchr(base, '.');
    const int dir = (int)(base - cfg), stem = dot ? (int)(dot - base) : (int)strlen(base);
    snprintf(path, sizeof path, "%.*s%.*s.names", dir, cfg, stem, base);
    if (access(path, R_OK) == 0)
        return cli_read_names(path, names);
    snprintf(path, sizeof path, "%.*scoco.names", dir, cfg);
    if (access(path, R_OK) == 0)
        return cli_read_names(path, names);
    fprintf(stderr, "mdfi: warning: no class names: labels are class_N.  Give --names FILE or "
            "--data FILE.data, or put %.*s.names or coco.names beside the cfg\n", stem, base);
    return 0;
}
