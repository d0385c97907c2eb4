#include "base/threads.h"

#include <stdint.h>
#include <stdlib.h>

#include "base/error.h"

#if MDFI_THREADS
#include <pthread.h>
#include <time.h>

/* Waiting: the workers and the caller spin a short while before sleeping on
 * a condition variable.  Waking a sleeping thread costs tens of microseconds
 * (more in a virtual machine, whose idle CPU halts), and a forward has one or
 * two runs per layer.
 *
 * Sharing: tasks are claimed from one 64-bit word, the run's generation, task
 * count and next task together, so a thread that is late (descheduled, or
 * still waking) leaves its share to the others and can never claim a task of
 * a finished run.  Every task writes its own part of the output, so results
 * never depend on which thread ran it; `thread` only picks scratch. */
#define SPIN_NS 200000L   /* about the gap between two layers' runs */

/* word: generation (24 bits) | task count (20) | next task (20) */
#define TASK_BITS 20
#define MAX_TASKS ((1 << TASK_BITS) - 1)
#define W_NEXT(w) ((int)((w) & MAX_TASKS))
#define W_TASKS(w) ((int)(((w) >> TASK_BITS) & MAX_TASKS))
#define W_GEN(w) ((w) >> (2 * TASK_BITS))

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

struct mdfi_pool {
    int threads;
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t wake, done_cv;
    uint64_t word;              /* (atomic) see above */
    int done;                   /* tasks of this run finished (atomic) */
    int quit;                   /* (atomic) */
    int sleepers;               /* workers waiting on wake (under mu) */
    mdfi_task_fn fn;            /* written only while no task is claimable */
    void *arg;
};

typedef struct {
    mdfi_pool *pool;
    int thread;
} worker_arg;

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
    __asm__ __volatile__("yield");
#endif
}

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Spins while the run's generation is gen and the run's done count is
 * below want (want 0: only the generation); 1 when that changed, 0 after
 * SPIN_NS. */
static int spin(mdfi_pool *p, uint64_t gen, int want)
{
    long long until = 0;
    for (unsigned i = 1;; ++i) {
        if (want ? LOAD(p->done) >= want : W_GEN(LOAD(p->word)) != gen || LOAD(p->quit))
            return 1;
        relax();
        if (i % 64 == 0) {   /* the clock only now and then */
            long long t = now_ns();
            if (!until)
                until = t + SPIN_NS;
            else if (t > until)
                return 0;
        }
    }
}

/* Claims and runs tasks of generation gen until none is left. */
static void run_tasks(mdfi_pool *p, uint64_t gen, int thread)
{
    uint64_t w = LOAD(p->word);
    while (W_GEN(w) == gen && W_NEXT(w) < W_TASKS(w)) {
        if (!__atomic_compare_exchange_n(&p->word, &w, w + 1, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            continue;   /* w now holds the current word */
        p->fn(p->arg, W_NEXT(w), thread);
        if (__atomic_add_fetch(&p->done, 1, __ATOMIC_ACQ_REL) == W_TASKS(w)) {
            pthread_mutex_lock(&p->mu);   /* the caller may be asleep */
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
        w = LOAD(p->word);
    }
}

static void *worker(void *varg)
{
    worker_arg *wa = varg;
    mdfi_pool *p = wa->pool;
    int thread = wa->thread;
    free(wa);
    uint64_t seen = 0;
    for (;;) {
        if (!spin(p, seen, 0)) {
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while (!LOAD(p->quit) && W_GEN(LOAD(p->word)) == seen)
                pthread_cond_wait(&p->wake, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        if (LOAD(p->quit))
            break;
        seen = W_GEN(LOAD(p->word));
        run_tasks(p, seen, thread);
    }
    return NULL;
}

mdfi_status mdfi_pool_new(int threads, mdfi_pool **out, mdfi_errbuf *err)
{
    *out = NULL;
    if (threads <= 1)
        return MDFI_OK;
    mdfi_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->tid = calloc((size_t)threads, sizeof *p->tid))) {
        free(p);
        return mdfi_fail(err, MDFI_ERR_NOMEM, "out of memory creating %d threads", threads);
    }
    p->threads = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    for (int i = 1; i < threads; ++i) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) {
            wa->pool = p;
            wa->thread = i;
        }
        if (!wa || pthread_create(&p->tid[i], NULL, worker, wa) != 0) {
            free(wa);
            p->threads = i;   /* join only those that started */
            mdfi_pool_free(p);
            return mdfi_fail(err, MDFI_ERR_NOMEM, "cannot start thread %d of %d", i, threads);
        }
    }
    *out = p;
    return MDFI_OK;
}

void mdfi_pool_free(mdfi_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    STORE(p->quit, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->threads; ++i)
        pthread_join(p->tid[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cv);
    free(p->tid);
    free(p);
}

int mdfi_pool_threads(const mdfi_pool *p)
{
    return p ? p->threads : 1;
}

void mdfi_pool_run(mdfi_pool *p, int tasks, mdfi_task_fn fn, void *arg)
{
    if (!p || tasks <= 1 || tasks > MAX_TASKS) {
        for (int t = 0; t < tasks; ++t)
            fn(arg, t, 0);
        return;
    }
    /* every task of the last run is done, so no thread reads these now */
    p->fn = fn;
    p->arg = arg;
    STORE(p->done, 0);
    const uint64_t gen = (W_GEN(LOAD(p->word)) + 1) & ((1u << 24) - 1);
    STORE(p->word, gen << (2 * TASK_BITS) | (uint64_t)tasks << TASK_BITS);
    pthread_mutex_lock(&p->mu);
    if (p->sleepers)
        pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, gen, 0);
    if (!spin(p, gen, tasks)) {
        pthread_mutex_lock(&p->mu);
        while (LOAD(p->done) < tasks)
            pthread_cond_wait(&p->done_cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
#else /* no threads: everything runs on the caller */

struct mdfi_pool {
    int unused;
};

mdfi_status mdfi_pool_new(int threads, mdfi_pool **out, mdfi_errbuf *err)
{
    (void)threads;
    (void)err;
    *out = NULL;
    return MDFI_OK;
}

void mdfi_pool_free(mdfi_pool *p)
{
    (void)p;
}

int mdfi_pool_threads(const mdfi_pool *p)
{
    (void)p;
    return 1;
}

void mdfi_pool_run(mdfi_pool *p, int tasks, mdfi_task_fn fn, void *arg)
{
    (void)p;
    for (int t = 0; t < tasks; ++t)
        fn(arg, t, 0);
}
#endif
