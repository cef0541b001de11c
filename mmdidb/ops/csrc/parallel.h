/*
 * Splitting a C kernel's work over POSIX threads (shared by cpu_bits.c and
 * cpu_fused.c). No OpenMP: a second OpenMP runtime beside torch's would
 * oversubscribe the cores.
 */
#ifndef MMDIDB_PARALLEL_H
#define MMDIDB_PARALLEL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define MMDIDB_MAX_THREADS 64

/* Run fn on n task structs laid out `size` bytes apart from `tasks`: task 0
 * on the calling thread, the others on new threads; a task whose thread
 * cannot be started runs on the calling thread too. Returns when all are
 * done. */
static void mmdidb_run_parallel(void *(*fn)(void *), void *tasks,
                                size_t size, int64_t n) {
    pthread_t ids[MMDIDB_MAX_THREADS];
    int started[MMDIDB_MAX_THREADS] = {0};
    char *base = (char *)tasks;
    if (n > MMDIDB_MAX_THREADS)
        n = MMDIDB_MAX_THREADS;
    for (int64_t i = 1; i < n; ++i)
        started[i] =
            pthread_create(&ids[i], NULL, fn, base + (size_t)i * size) == 0;
    fn(base);
    for (int64_t i = 1; i < n; ++i) {
        if (started[i])
            pthread_join(ids[i], NULL);
        else
            fn(base + (size_t)i * size);
    }
}

#endif
