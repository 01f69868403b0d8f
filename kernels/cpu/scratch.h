/* Per-thread scratch allocated before a parallel region, so that a failed allocation is
 * reported before anything is written. */
#ifndef Q3_CPU_SCRATCH_H
#define Q3_CPU_SCRATCH_H

#include <stddef.h>
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static inline int q3_max_threads(void) {
#ifdef _OPENMP
    int n = omp_get_max_threads();
    return n > 0 ? n : 1;
#else
    return 1;
#endif
}

static inline int q3_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* A block of `per_thread` bytes (rounded up to 64) for each of q3_max_threads() threads;
 * *stride receives the rounded size. NULL when the allocation fails. */
static inline void *q3_scratch_alloc(size_t per_thread, size_t *stride) {
    size_t rounded = (per_thread + 63u) / 64u * 64u;
    if (rounded == 0) rounded = 64u;
    *stride = rounded;
    size_t threads = (size_t)q3_max_threads();
    if (rounded > (size_t)-1 / threads) return NULL;
    return malloc(rounded * threads);
}

static inline void *q3_scratch_for_thread(void *base, size_t stride) {
    return (char *)base + stride * (size_t)q3_thread_id();
}

#endif
