/* The prologue every entry point opens with, Q3_ENTER, and the two checks each library supplies
 * for it and for the whole-call contracts. */
#ifndef Q3_HOST_ENTRY_H
#define Q3_HOST_ENTRY_H

#include "contracts.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A tensor argument, the name its errors give it, and whether the call writes it. */
typedef struct {
    const char *name;
    const q3_tensor *tensor;
    int written;
} q3_named_tensor;

/* Q3_OK unless an output (written) shares memory with another of the `count` tensors, refused as
 * Q3_BAD_STRIDES naming both (apart.c). */
int q3_check_apart(const char *op, const q3_named_tensor *tensors, int count);
/* Q3_OK when the library takes this stream (the CPU library takes none). */
int q3_check_stream(const char *op, const void *stream);
/* Q3_OK when the kernels of the library can reach the memory of every tensor (the CUDA library's
 * need device memory); the first one they cannot reach is named. */
int q3_check_memory(const char *op, const q3_named_tensor *tensors, int count);

#ifdef __cplusplus
}
#endif

/* Opens entry point `name` (whose stream parameter is `stream`): clears the last error, checks the
 * stream, then runs `contract`, the operator's q3_check_*_call given `op`, which ends with the
 * library's check of where the call's tensors live. Returns the first failing status; declares `op`
 * and `status` for the rest of the entry point. */
#define Q3_ENTER(name, contract)                                            \
    static const char op[] = name;                                          \
    int status;                                                             \
    q3_clear_error();                                                       \
    if ((status = q3_check_stream(op, stream)) != Q3_OK) return status;     \
    if ((status = (contract)) != Q3_OK) return status

#endif
