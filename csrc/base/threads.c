#include "base/threads.h"

#include <stdlib.h>

#include "base/error.h"

#if MDFI_THREADS
#include <pthread.h>

struct mdfi_pool {
    int threads;
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    unsigned long generation;   /* bumped for every run */
    int pending;                /* workers still busy with this generation */
    int quit;
    mdfi_task_fn fn;
    void *arg;
    int tasks;
};

typedef struct {
    mdfi_pool *pool;
    int thread;
} worker_arg;

static void run_share(mdfi_pool *p, int thread)
{
    for (int t = thread; t < p->tasks; t += p->threads)
        p->fn(p->arg, t, thread);
}

static void *worker(void *varg)
{
    worker_arg *wa = varg;
    mdfi_pool *p = wa->pool;
    int thread = wa->thread;
    free(wa);
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit)
            break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        run_share(p, thread);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
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
    pthread_cond_init(&p->done, NULL);
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
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->threads; ++i)
        pthread_join(p->tid[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->tid);
    free(p);
}

int mdfi_pool_threads(const mdfi_pool *p)
{
    return p ? p->threads : 1;
}

void mdfi_pool_run(mdfi_pool *p, int tasks, mdfi_task_fn fn, void *arg)
{
    if (!p || tasks <= 1) {
        for (int t = 0; t < tasks; ++t)
            fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->tasks = tasks;
    p->pending = p->threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_share(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
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
