/* Status strings and the per-thread last error. */
#include <stdarg.h>
#include <stdio.h>

#include "status.h"

#ifdef __cplusplus
#define Q3_THREAD_LOCAL thread_local
#else
#define Q3_THREAD_LOCAL _Thread_local
#endif

static Q3_THREAD_LOCAL char last_error[512];

int q3_abi_version(void) { return Q3_ABI_VERSION; }

const char *q3_status_string(int status) {
    switch (status) {
    case Q3_OK: return "ok";
    case Q3_BAD_DTYPE: return "bad dtype";
    case Q3_BAD_SHAPE: return "bad shape";
    case Q3_BAD_STRIDES: return "bad strides";
    case Q3_BAD_VALUE: return "bad value";
    case Q3_BAD_ATTRIBUTE: return "bad attribute";
    case Q3_NULL_POINTER: return "null pointer";
    case Q3_UNSUPPORTED: return "unsupported";
    case Q3_LAUNCH_FAILED: return "launch failed";
    case Q3_OUT_OF_MEMORY: return "out of memory";
    default: return "unknown status";
    }
}

const char *q3_last_error(void) { return last_error; }

void q3_clear_error(void) { last_error[0] = '\0'; }

int q3_fail(int status, const char *op, const char *fmt, ...) {
    int used = snprintf(last_error, sizeof last_error, "%s: ", op);
    if (used < 0 || (size_t)used >= sizeof last_error) return status;
    va_list args;
    va_start(args, fmt);
    vsnprintf(last_error + used, sizeof last_error - (size_t)used, fmt, args);
    va_end(args);
    return status;
}

const char *q3_dtype_name(int dtype) {
    switch (dtype) {
    case Q3_F32: return "float32";
    case Q3_F16: return "float16";
    case Q3_BF16: return "bfloat16";
    case Q3_I32: return "int32";
    case Q3_I64: return "int64";
    case Q3_F64: return "float64";
    default: return "unknown dtype";
    }
}
