/* Whether a loop is worth a parallel region: starting and joining the thread team costs tens of
 * microseconds (more when its threads sleep between calls), about what a few tens of thousands of
 * element operations take, so decode-size calls run on the calling thread. */
#ifndef Q3_CPU_PARALLEL_H
#define Q3_CPU_PARALLEL_H

#include <stdint.h>

#define Q3_PARALLEL_WORK 32768 /* element operations */

static inline int q3_parallel(int64_t work) { return work >= Q3_PARALLEL_WORK; }

#endif
