/* The built-in mutation loop for MDFI's fuzz targets, for toolchains without
 * libFuzzer (gcc).  Linked with one tests/fuzz/fuzz_NAME.c, it calls the same
 * LLVMFuzzerTestOneInput that `make fuzz` links with libFuzzer:
 *   fuzz_NAME [--seconds S] [--iters N] [--seed N] [--dict FILE] SEED...
 *       mutates the seeds (files or corpus directories) for S seconds or N inputs;
 *       dictionary tokens (libFuzzer's format) are inserted and overwritten too
 *   fuzz_NAME --run FILE...   runs each file once (crash reproducers, regressions)
 * A failing input (a sanitizer report, an abort or a crash) is written to
 * fuzz-crash-NAME (in $MDFI_FUZZ_CRASH_DIR, else the working directory).
 * The mutations are deterministic for a given --seed, seeds and dictionary. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    unsigned char *data;
    size_t size;
} blob;

static const unsigned char *cur_data;   /* the input being run, for the crash file */
static size_t cur_size;
static char crash_path[4096];

static void save_crash(void)
{
    if (!cur_data)
        return;
    int fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        size_t off = 0;
        while (off < cur_size) {
            ssize_t k = write(fd, cur_data + off, cur_size - off);
            if (k <= 0)
                break;
            off += (size_t)k;
        }
        close(fd);
    }
    static const char msg[] = "fuzz: the failing input is in ";
    if (write(2, msg, sizeof msg - 1) < 0 || write(2, crash_path, strlen(crash_path)) < 0 ||
        write(2, "\n", 1) < 0)
        return;
    cur_data = NULL;
}

static void on_signal(int sig)
{
    save_crash();
    signal(sig, SIG_DFL);
    raise(sig);
}

#ifdef __SANITIZE_ADDRESS__   /* gcc's ASan: a report calls this before exiting */
void __sanitizer_set_death_callback(void (*callback)(void));
#define HAVE_DEATH_CALLBACK 1
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_state;
static uint64_t next(void)   /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t below(size_t n)
{
    return n ? (size_t)(next() % n) : 0;
}

static int read_blob(const char *path, blob *b)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz: cannot open %s\n", path);
        return 1;
    }
    size_t cap = 4096, n = 0;
    unsigned char *d = malloc(cap);
    size_t k;
    while (d && (k = fread(d + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            unsigned char *bigger = realloc(d, cap *= 2);
            if (!bigger)
                free(d);
            d = bigger;
        }
    }
    fclose(f);
    if (!d)
        return 1;
    b->data = d;
    b->size = n;
    return 0;
}

static blob *items;
static int n_items, cap_items;

static int add_item(blob b)
{
    if (n_items == cap_items) {
        cap_items = cap_items ? 2 * cap_items : 16;
        blob *bigger = realloc(items, (size_t)cap_items * sizeof *items);
        if (!bigger)
            return 1;
        items = bigger;
    }
    items[n_items++] = b;
    return 0;
}

/* A file, or every plain file of a directory (a corpus). */
static int add_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        int rc = 0;
        while (d && !rc && (e = readdir(d)) != NULL) {
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            if (e->d_name[0] != '.' && stat(sub, &st) == 0 && S_ISREG(st.st_mode)) {
                blob b;
                rc = read_blob(sub, &b) || add_item(b);
            }
        }
        if (d)
            closedir(d);
        return rc || !d;
    }
    blob b;
    return read_blob(path, &b) || add_item(b);
}

/* libFuzzer's dictionary format: one "token" per line (an optional name= before
 * it), with \\, \" and \xNN escapes; # starts a comment. */
static blob *dict;
static int n_dict;

static int load_dict(const char *path)
{
    blob text;
    if (read_blob(path, &text))
        return 1;
    char *p = (char *)text.data, *end = p + text.size;
    while (p < end) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        char *q = memchr(p, '"', (size_t)(eol - p));
        if (q && *p != '#') {
            unsigned char tok[256];
            size_t n = 0;
            for (++q; q < eol && *q != '"' && n < sizeof tok; ++q) {
                if (*q == '\\' && q + 1 < eol) {
                    ++q;
                    if (*q == 'x' && q + 2 < eol) {
                        char hex[3] = {q[1], q[2], 0};
                        tok[n++] = (unsigned char)strtoul(hex, NULL, 16);
                        q += 2;
                        continue;
                    }
                }
                tok[n++] = (unsigned char)*q;
            }
            blob *bigger = realloc(dict, (size_t)(n_dict + 1) * sizeof *dict);
            if (!bigger || !(bigger[n_dict].data = malloc(n ? n : 1)))
                return 1;
            dict = bigger;
            memcpy(dict[n_dict].data, tok, n);
            dict[n_dict++].size = n;
        }
        p = eol + 1;
    }
    free(text.data);
    return 0;
}

/* Bytes that reach edge cases in binary sizes and in text. */
static const unsigned char interesting[] = {0x00, 0x01, 0x02, 0x07, 0x08, 0x0F, 0x10, 0x7F,
                                            0x80, 0xFF, '\n', '[', ']', '=', ',', '-', '0',
                                            '1', '9', '#', ' ', '.', 'e'};

static size_t mutate(const blob *s, unsigned char *buf, size_t cap)
{
    size_t n = s->size < cap ? s->size : cap;
    memcpy(buf, s->data, n);
    int edits = 1 + (int)below(4);
    for (int e = 0; e < edits; e++) {
        size_t at = below(n + 1);
        if (next() & 1)   /* headers are where the checks are */
            at = below((n < 256 ? n : 256) + 1);
        switch (below(n_dict ? 10 : 8)) {
        case 0: if (at < n) buf[at] ^= (unsigned char)(1u << below(8)); break;
        case 1: if (at < n) buf[at] = (unsigned char)next(); break;
        case 2: if (at < n) buf[at] = interesting[below(sizeof interesting)]; break;
        case 3: n = at; break;                                  /* truncate */
        case 4: {                                               /* delete a run */
            size_t len = 1 + below(16);
            if (at + len > n)
                len = n - at;
            memmove(buf + at, buf + at + len, n - at - len);
            n -= len;
            break;
        }
        case 5: {                                               /* duplicate a run */
            size_t len = 1 + below(64);
            if (at + len > n)
                len = n - at;
            if (n + len <= cap) {
                memmove(buf + at + len, buf + at, n - at);
                n += len;
            }
            break;
        }
        case 6:                                                 /* a 32-bit field */
            if (at + 4 <= n) {
                uint32_t v = below(3) == 0 ? 0xFFFFFFFFu : below(2) ? (uint32_t)below(70000)
                                                                     : (uint32_t)next();
                memcpy(buf + at, &v, 4);
            }
            break;
        case 7: {                                               /* splice another item */
            const blob *o = &items[below((size_t)n_items)];
            size_t from = below(o->size + 1), len = below(o->size - from + 1);
            if (len > 256)
                len = 256;
            if (at + len <= cap) {
                memcpy(buf + at, o->data + from, len);
                if (at + len > n)
                    n = at + len;
            }
            break;
        }
        default: {                                              /* a dictionary token */
            const blob *t = &dict[below((size_t)n_dict)];
            if (n + t->size > cap)
                break;
            if (next() & 1) {                                   /* inserted */
                memmove(buf + at + t->size, buf + at, n - at);
                n += t->size;
            } else if (at + t->size > n) {
                n = at + t->size;
            }
            memcpy(buf + at, t->data, t->size);
            break;
        }
        }
    }
    return n;
}

static void run_one(const unsigned char *data, size_t size)
{
    cur_data = data;
    cur_size = size;
    LLVMFuzzerTestOneInput(data, size);
    cur_data = NULL;
}

int main(int argc, char **argv)
{
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    const char *dir = getenv("MDFI_FUZZ_CRASH_DIR");
    snprintf(crash_path, sizeof crash_path, "%s/fuzz-crash-%s", dir ? dir : ".", name);
    signal(SIGABRT, on_signal);
    signal(SIGSEGV, on_signal);
    signal(SIGBUS, on_signal);
    signal(SIGFPE, on_signal);
#ifdef HAVE_DEATH_CALLBACK
    __sanitizer_set_death_callback(save_crash);
#endif
    double seconds = 10;
    long iters = 0;
    int replay = 0;
    rng_state = 1;
    for (int i = 1; i < argc; i++) {
        int rc = 0;
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            rng_state = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--dict") && i + 1 < argc)
            rc = load_dict(argv[++i]);
        else if (!strcmp(argv[i], "--run"))
            replay = 1;
        else
            rc = add_path(argv[i]);
        if (rc)
            return 2;
    }
    if (n_items == 0) {
        fprintf(stderr, "usage: %s [--seconds S] [--iters N] [--seed N] [--dict FILE] SEED... "
                "| --run FILE...\n", name);
        return 2;
    }
    double t0 = now_s();
    if (replay) {
        for (int i = 0; i < n_items; i++)
            run_one(items[i].data, items[i].size);
        printf("fuzz: %s ran %d inputs in %.1f s\n", name, n_items, now_s() - t0);
        return 0;
    }
    size_t cap = 0;
    for (int i = 0; i < n_items; i++)
        if (items[i].size > cap)
            cap = items[i].size;
    cap += 4096;
    unsigned char *buf = malloc(cap);
    if (!buf)
        return 2;
    long n = 0;
    for (int i = 0; i < n_items; i++, n++)   /* the seeds themselves first */
        run_one(items[i].data, items[i].size);
    for (; (iters <= 0 || n < iters) && now_s() - t0 < seconds; n++) {
        size_t len = mutate(&items[below((size_t)n_items)], buf, cap);
        run_one(buf, len);
    }
    printf("fuzz: %s ran %ld inputs in %.1f s\n", name, n, now_s() - t0);
    free(buf);
    return 0;
}
