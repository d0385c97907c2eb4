/* A small fixed pool of worker threads for splitting one layer's work.
 * Threads claim tasks as they come free, so a task may run on any thread:
 * `thread` (0 = the caller) picks per-thread scratch, and a task's result
 * must not depend on it.  Without MDFI_THREADS it runs serially. */
#ifndef MDFI_CORE_THREADS_H
#define MDFI_CORE_THREADS_H

#include "mdfi.h"

typedef struct mdfi_pool mdfi_pool;
typedef void (*mdfi_task_fn)(void *arg, int task, int thread);

mdfi_status mdfi_pool_new(int threads, mdfi_pool **out, mdfi_errbuf *err);
void mdfi_pool_free(mdfi_pool *pool);
int mdfi_pool_threads(const mdfi_pool *pool);   /* 1 for a NULL pool */
/* Runs fn(arg, t, thread) for t in [0, tasks) and waits for all. */
void mdfi_pool_run(mdfi_pool *pool, int tasks, mdfi_task_fn fn, void *arg);

#endif
