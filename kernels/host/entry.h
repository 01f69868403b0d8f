/* The prologue every entry point opens with, Q3_ENTER, and the two checks each library supplies
 * for it. */
#ifndef Q3_HOST_ENTRY_H
#define Q3_HOST_ENTRY_H

#include "contracts.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A tensor argument and the name its errors give it. */
typedef struct {
    const char *name;
    const q3_tensor *tensor;
} q3_named_tensor;

/* Q3_OK when the library takes this stream (the CPU library takes none). */
int q3_check_stream(const char *op, const void *stream);
/* Q3_OK when the kernels of the library can reach the memory of every tensor (the CUDA library's
 * need device memory); the first one they cannot reach is named. */
int q3_check_memory(const char *op, const q3_named_tensor *tensors, int count);

#ifdef __cplusplus
}
#endif

/* Opens entry point `name` (whose stream parameter is `stream`): clears the last error, checks the
 * stream, runs `contract` (a q3_check_*_call given `op`), then the memory of the tensors that
 * follow as {"name", &tensor} pairs, in that order. Returns the first failing status; declares
 * `op` and `status` for the rest of the entry point. */
#define Q3_ENTER(name, contract, ...)                                                          \
    static const char op[] = name;                                                             \
    int status;                                                                                \
    q3_clear_error();                                                                          \
    if ((status = q3_check_stream(op, stream)) != Q3_OK) return status;                        \
    if ((status = (contract)) != Q3_OK) return status;                                         \
    {                                                                                          \
        const q3_named_tensor q3_entry_tensors[] = {__VA_ARGS__};                              \
        const int q3_entry_count = (int)(sizeof q3_entry_tensors / sizeof q3_entry_tensors[0]); \
        if ((status = q3_check_memory(op, q3_entry_tensors, q3_entry_count)) != Q3_OK) return status; \
    }

#endif
