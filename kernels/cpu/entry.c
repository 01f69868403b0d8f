/* The CPU library's side of Q3_ENTER and the contracts: no stream, and any memory the process can
 * address. */
#include <stddef.h>

#include "entry.h"

int q3_check_stream(const char *op, const void *stream) {
    if (stream != NULL) return q3_fail(Q3_BAD_ATTRIBUTE, op, "the CPU library takes no stream");
    return Q3_OK;
}

int q3_check_memory(const char *op, const q3_named_tensor *tensors, int count) {
    (void)op;
    (void)tensors;
    (void)count;
    return Q3_OK;
}

int q3_take_deferred_error(void *stream) {
    (void)stream;
    return Q3_OK;  // the C kernels report every error at the call
}
