/* The worker pool (base/threads.c): every task of every run runs exactly
 * once, on a thread index below the pool's size, and the run returns only
 * after all of them; with runs back to back (workers spinning), after pauses
 * long enough for them to sleep, with tasks that stall one thread (the
 * others take its share), with few and many tasks.  Built with
 * -fsanitize=thread by tests/test_threads.py as well.
 *
 *   test_pool [--quick] */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/threads.h"

#define MAXT 5000

typedef struct {
    int run;
    int hits[MAXT];       /* the run that last ran task t */
    int bad_thread;
    int threads;
    int stall_task;       /* this task sleeps (-1: none) */
    int ran_on[64];       /* tasks per thread index, this run */
} job;

static void nap(long ns)
{
    struct timespec t = {0, ns};
    nanosleep(&t, NULL);
}

static void task(void *arg, int t, int thread)
{
    job *j = arg;
    if (thread < 0 || thread >= j->threads)
        __atomic_store_n(&j->bad_thread, 1, __ATOMIC_RELAXED);
    else
        __atomic_fetch_add(&j->ran_on[thread], 1, __ATOMIC_RELAXED);
    if (t == j->stall_task)
        nap(2000000);
    /* a task runs once: its slot still holds the previous run */
    if (j->hits[t] != j->run - 1)
        j->hits[t] = -1000000;
    else
        j->hits[t] = j->run;
}

int main(int argc, char **argv)
{
    const int quick = argc > 1 && !strcmp(argv[1], "--quick");
    int n_pass = 0, n_fail = 0;
    static job j;
    const int sizes[] = {2, 3, 4, 8};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; ++si) {
        mdfi_pool *pool = NULL;
        mdfi_errbuf err = {0};
        if (mdfi_pool_new(sizes[si], &pool, &err) != MDFI_OK) {
            printf("FAIL pool of %d: %s\n", sizes[si], err.msg);
            ++n_fail;
            continue;
        }
        memset(&j, 0, sizeof j);
        j.threads = mdfi_pool_threads(pool);
        int runs = quick ? 300 : 3000, ok = j.threads == sizes[si], stalled = 0;
        for (int r = 1; r <= runs && ok; ++r) {
            /* 1..40 tasks mostly, now and then thousands */
            const int tasks = r % 97 == 0 ? MAXT : 1 + (r * 7919) % 40;
            j.run = r;
            j.stall_task = r % 53 == 0 ? 0 : -1;
            memset(j.ran_on, 0, sizeof j.ran_on);
            mdfi_pool_run(pool, tasks, task, &j);
            for (int t = 0; t < tasks; ++t)
                if (j.hits[t] != r)
                    ok = 0;
            for (int t = tasks; t < MAXT; ++t)   /* nothing past the count */
                if (j.hits[t] == r)
                    ok = 0;
            for (int t = 0; t < MAXT; ++t)   /* the next run's "previous" */
                if (j.hits[t] != r)
                    j.hits[t] = r;
            if (j.stall_task >= 0 && tasks > 2 && j.ran_on[0] < tasks)
                stalled = 1;   /* others ran tasks while one slept */
            if (r % 50 == 0)
                nap(1000000);   /* past the spin: workers go to sleep */
        }
        if (ok && !j.bad_thread) {
            printf("pool-%d ok%s\n", sizes[si], stalled ? "" : " (no stall shared)");
            ++n_pass;
        } else {
            printf("FAIL pool-%d: a task ran twice, not at all, or on a bad thread index\n",
                   sizes[si]);
            ++n_fail;
        }
        mdfi_pool_free(pool);
    }
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
