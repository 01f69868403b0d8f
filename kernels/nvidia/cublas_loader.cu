// cuBLAS through dlopen: the few entry points the GEMM kernels use, declared here.
#include <dlfcn.h>
#include <limits.h>
#include <mutex>

#include "cublas_loader.cuh"

namespace {

typedef int (*create_fn)(q3_cublas_handle_t *);
typedef int (*set_stream_fn)(q3_cublas_handle_t, cudaStream_t);
typedef int (*set_math_mode_fn)(q3_cublas_handle_t, int);
typedef int (*gemm_ex_fn)(q3_cublas_handle_t, int, int, int, int, int, const void *, const void *, int, int,
                          const void *, int, int, const void *, void *, int, int, int, int);

struct CublasApi {
    bool loaded = false;
    create_fn create = nullptr;
    set_stream_fn set_stream = nullptr;
    set_math_mode_fn set_math_mode = nullptr;  // optional
    gemm_ex_fn gemm_ex = nullptr;
};

// CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION: split-K partial sums
// stay in float32 rather than the output dtype.
constexpr int kMathMode = 16;

const CublasApi &api() {
    static CublasApi instance;
    static std::once_flag once;
    std::call_once(once, [] {
        static const char *const names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
        for (const char *name : names) {
            void *library = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
            if (library == nullptr) continue;
            CublasApi found;
            found.create = reinterpret_cast<create_fn>(dlsym(library, "cublasCreate_v2"));
            found.set_stream = reinterpret_cast<set_stream_fn>(dlsym(library, "cublasSetStream_v2"));
            found.set_math_mode = reinterpret_cast<set_math_mode_fn>(dlsym(library, "cublasSetMathMode"));
            found.gemm_ex = reinterpret_cast<gemm_ex_fn>(dlsym(library, "cublasGemmEx"));
            if (found.create != nullptr && found.set_stream != nullptr && found.gemm_ex != nullptr) {
                found.loaded = true;
                instance = found;
                return;
            }
            dlclose(library);
        }
    });
    return instance;
}

constexpr int kMaxDevices = 64;

// One handle per thread, device and stream slot (0: the caller's stream, 1..: side streams).
// Handles, side streams and events are never destroyed: destroying them from a thread_local
// destructor at process exit can run after the CUDA runtime has shut down.
constexpr int kSlots = 1 + Q3_SIDE_STREAMS;
struct HandleCache {
    q3_cublas_handle_t handles[kMaxDevices][kSlots] = {};
    bool failed[kMaxDevices] = {};
    cudaStream_t side[kMaxDevices][Q3_SIDE_STREAMS] = {};
    cudaEvent_t fork[kMaxDevices] = {};
    cudaEvent_t join[kMaxDevices][Q3_SIDE_STREAMS] = {};
    bool side_ready[kMaxDevices] = {};
    bool side_failed[kMaxDevices] = {};
};

thread_local HandleCache cache;

q3_cublas_handle_t handle_for(int device, int slot, cudaStream_t stream) {
    const CublasApi &a = api();
    q3_cublas_handle_t handle = cache.handles[device][slot];
    if (handle == nullptr) {
        if (a.create(&handle) != 0 || handle == nullptr) {
            (slot == 0 ? cache.failed : cache.side_failed)[device] = true;
            cudaGetLastError();
            return nullptr;
        }
        if (a.set_math_mode != nullptr) a.set_math_mode(handle, kMathMode);
        cache.handles[device][slot] = handle;
    }
    if (a.set_stream(handle, stream) != 0) return nullptr;
    return handle;
}

bool current_device(int *device) {
    if (cudaGetDevice(device) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return *device >= 0 && *device < kMaxDevices;
}

bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

}  // namespace

q3_cublas_handle_t q3_cublas_handle(cudaStream_t stream) {
    if (!api().loaded) return nullptr;
    int device = 0;
    if (!current_device(&device) || cache.failed[device]) return nullptr;
    return handle_for(device, 0, stream);
}

bool q3_side_fork(cudaStream_t stream, cudaStream_t side[Q3_SIDE_STREAMS],
                  q3_cublas_handle_t handles[Q3_SIDE_STREAMS]) {
    if (!api().loaded) return false;
    int device = 0;
    if (!current_device(&device) || cache.failed[device] || cache.side_failed[device]) return false;
    if (!cache.side_ready[device]) {
        bool ok = cudaEventCreateWithFlags(&cache.fork[device], cudaEventDisableTiming) == cudaSuccess;
        for (int i = 0; ok && i < Q3_SIDE_STREAMS; ++i) {
            ok = cudaStreamCreateWithFlags(&cache.side[device][i], cudaStreamNonBlocking) == cudaSuccess &&
                 cudaEventCreateWithFlags(&cache.join[device][i], cudaEventDisableTiming) == cudaSuccess;
        }
        if (!ok) {
            cudaGetLastError();
            cache.side_failed[device] = true;
            return false;
        }
        cache.side_ready[device] = true;
    }
    for (int i = 0; i < Q3_SIDE_STREAMS; ++i) {
        handles[i] = handle_for(device, 1 + i, cache.side[device][i]);
        if (handles[i] == nullptr) return false;
        side[i] = cache.side[device][i];
    }
    if (cudaEventRecord(cache.fork[device], stream) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    for (int i = 0; i < Q3_SIDE_STREAMS; ++i) cudaStreamWaitEvent(side[i], cache.fork[device], 0);
    return true;
}

void q3_side_join(cudaStream_t stream) {
    int device = 0;
    if (!current_device(&device) || !cache.side_ready[device]) return;
    for (int i = 0; i < Q3_SIDE_STREAMS; ++i) {
        cudaEventRecord(cache.join[device][i], cache.side[device][i]);
        cudaStreamWaitEvent(stream, cache.join[device][i], 0);
    }
}

int q3_cublas_gemm(q3_cublas_handle_t handle, int transa, int transb, int64_t m, int64_t n, int64_t k,
                   float alpha, const void *a, int a_type, int64_t lda, const void *b, int b_type, int64_t ldb,
                   float beta, void *c, int c_type, int64_t ldc) {
    const CublasApi &cublas = api();
    if (!cublas.loaded || handle == nullptr) return -1;
    if (!fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(lda) || !fits_int(ldb) || !fits_int(ldc)) {
        return -1;
    }
    return cublas.gemm_ex(handle, transa, transb, (int)m, (int)n, (int)k, &alpha, a, a_type, (int)lda, b, b_type,
                          (int)ldb, &beta, c, c_type, (int)ldc, Q3_CUBLAS_COMPUTE_32F, Q3_CUBLAS_GEMM_DEFAULT);
}

bool q3_cublas_operand(int64_t rows, int64_t cols, int64_t rs, int64_t cs, int *op, int64_t *ld) {
    if (!fits_int(rows) || !fits_int(cols)) return false;
    const bool one_row = rows <= 1, one_col = cols <= 1;
    const int64_t r = rows > 1 ? rows : 1, c = cols > 1 ? cols : 1;
    // Column-major: (i, j) at i + j * ld, ld >= rows.
    if ((rs == 1 || one_row) && (one_col || cs >= r)) {
        *op = Q3_CUBLAS_OP_N;
        *ld = one_col ? r : cs;
        return fits_int(*ld);
    }
    // Row-major, i.e. the transpose of a column-major cols x rows matrix: (i, j) at j + i * ld, ld >= cols.
    if ((cs == 1 || one_col) && (one_row || rs >= c)) {
        *op = Q3_CUBLAS_OP_T;
        *ld = one_row ? c : rs;
        return fits_int(*ld);
    }
    return false;
}

bool q3_cublas_output(int64_t rows, int64_t cols, int64_t rs, int64_t cs, int64_t *ld) {
    if (!fits_int(rows) || !fits_int(cols)) return false;
    const int64_t r = rows > 1 ? rows : 1;
    if (!((rs == 1 || rows <= 1) && (cols <= 1 || cs >= r))) return false;
    *ld = cols <= 1 ? r : cs;
    return fits_int(*ld);
}
