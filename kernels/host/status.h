/* The status side of every entry point: the per-thread message q3_last_error() returns. */
#ifndef Q3_HOST_STATUS_H
#define Q3_HOST_STATUS_H

#include "qwen3_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Records the message returned by q3_last_error() and passes the status through. */
int q3_fail(int status, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void q3_clear_error(void);
const char *q3_dtype_name(int dtype);

#ifdef __cplusplus
}
#endif

#endif
