// The status strings, validation helpers and CUDA runtime helpers of the real libraries, so the
// wrong kernels reject bad input exactly as the real ones do and differ only in their bug.
#include "status.c"
#include "runtime.cu"
