// The CUDA runtime helpers and the deferred index checks of the real library, so the wrong kernels reject bad input exactly as the
// real ones do and differ only in their bug (the build compiles kernels/host/ in beside them).
#include "deferred_check.cu"
#include "runtime.cu"
