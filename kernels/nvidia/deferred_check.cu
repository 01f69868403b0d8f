// The host side of deferred_check.cuh: one record per device, the launch of a check, the note each
// check leaves for its message, and q3_take_deferred_error.
#include <string.h>

#include <mutex>

#include "deferred_check.cuh"
#include "entry.h"

namespace q3r {
namespace {

constexpr int MAX_DEVICES = 64;
constexpr unsigned int NOTES = 1024;  // checks remembered for their message between two takes

// What the message of a failed check needs to say; the device knows only the ticket.
struct CheckNote {
    unsigned int ticket;
    const char *op;
    const char *name;
    DeferredStyle style;
    int64_t low, limit, per_group;
};

struct DeviceState {
    DeferredRecord *record = nullptr;
    unsigned int next_ticket = 1;
    CheckNote notes[NOTES] = {};
};

std::mutex &state_mutex() {
    static std::mutex mutex;
    return mutex;
}

DeviceState *device_state(int device) {
    static DeviceState states[MAX_DEVICES];
    return device >= 0 && device < MAX_DEVICES ? &states[device] : nullptr;
}

DeferredRecord empty_record() {
    DeferredRecord r = {};
    r.position = ~0ull;
    return r;
}

// The record of the current device, allocated on first use; NULL with a status set on failure.
DeferredRecord *current_record(const char *op, int *device_out, int *status) {
    int device = 0;
    cudaError_t error = cudaGetDevice(&device);
    DeviceState *state = error == cudaSuccess ? device_state(device) : nullptr;
    if (state == nullptr) {
        cudaGetLastError();
        *status = q3_fail(Q3_LAUNCH_FAILED, op, "cannot tell the current device: %s", cudaGetErrorString(error));
        return nullptr;
    }
    *device_out = device;
    if (state->record == nullptr) {
        DeferredRecord *record = nullptr;
        const DeferredRecord initial = empty_record();
        error = cudaMalloc(&record, sizeof *record);
        if (error == cudaSuccess) error = cudaMemcpy(record, &initial, sizeof initial, cudaMemcpyHostToDevice);
        if (error != cudaSuccess) {
            cudaGetLastError();
            if (record != nullptr) cudaFree(record);
            *status = q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate the record of index checks: %s",
                              cudaGetErrorString(error));
            return nullptr;
        }
        state->record = record;
    }
    *status = Q3_OK;
    return state->record;
}

template <bool GROUPED>
__global__ void __launch_bounds__(256) check_kernel(IndexGuard g, unsigned long long *seen, unsigned long long *repeated) {
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    bool bad = false;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < g.count; e += step) {
        int64_t v;
        bool counts;
        if (out_of_range(g, e, &v, &counts)) {
            bad = true;
        } else if (GROUPED && counts) {
            const int64_t word = (e / g.per_group) * g.words + (v >> 6);
            const unsigned long long bit = 1ull << (v & 63);
            if (atomicOr(seen + word, bit) & bit) {
                atomicOr(repeated + word, bit);
                bad = true;
            }
        }
    }
    if (bad) {
        atomicOr(&g.record->flag, 1u);
        atomicCAS(&g.record->ticket, 0u, g.ticket);
    }
}

}  // namespace

int check_deferred(const char *op, const CheckSpec &spec, const q3_tensor &t, cudaStream_t stream, IndexGuard *guard,
                   bool *on_host) {
    const char *name = spec.name;
    const int64_t limit = spec.limit, groups = spec.groups > 0 ? spec.groups : 1;
    memset(guard, 0, sizeof *guard);
    *on_host = false;
    int device = 0, status = Q3_OK;
    DeferredRecord *record = current_record(op, &device, &status);
    if (record == nullptr) return status;
    guard->record = record;
    guard->low = spec.low;
    guard->limit = limit;
    guard->count = q3_numel(&t);
    guard->per_group = guard->count / groups;
    guard->index = t;
    if (spec.lengths != nullptr) {
        guard->lengths = *spec.lengths;
        guard->block_size = spec.block_size;
    }
    if (guard->count == 0) return Q3_OK;  // ticket 0: never the failing call
    if (spec.lengths == nullptr) {  // a block table keeps its [B, max_blocks] shape: per_group is its row
        q3_tensor *const views[] = {&guard->index};
        collapse(views, 1, false);  // row-major element order and offsets are unchanged
    }

    const int64_t words = spec.distinct ? limit / 64 + 1 : 0;  // limit >= 0 (a tensor size)
    const int64_t max_words = MAX_INDEX_BITMAP_BYTES / 16;  // two bitmaps
    if (spec.distinct && (words > max_words || groups > max_words / words)) {
        *on_host = true;
        return Q3_OK;
    }
    {
        std::lock_guard<std::mutex> lock(state_mutex());
        DeviceState *state = device_state(device);
        guard->ticket = state->next_ticket++;
        if (state->next_ticket == 0) state->next_ticket = 1;
        state->notes[guard->ticket % NOTES] =
            CheckNote{guard->ticket, op, name, spec.style, spec.low, limit, guard->per_group};
    }
    unsigned long long *seen = nullptr;
    cudaError_t error = cudaSuccess;
    if (spec.distinct) {
        guard->words = words;
        const size_t bytes = (size_t)(2 * groups * words) * sizeof(unsigned long long);
        void *scratch = nullptr;
        error = scratch_alloc(&scratch, bytes, stream);
        if (error == cudaSuccess) {
            guard->scratch = scratch;
            seen = static_cast<unsigned long long *>(scratch);
            guard->repeated = seen + groups * words;
            error = cudaMemsetAsync(scratch, 0, bytes, stream);
        } else {
            cudaGetLastError();
            return q3_fail(Q3_OUT_OF_MEMORY, op, "cannot allocate the scratch to check tensor '%s': %s", name,
                           cudaGetErrorString(error));
        }
    }
    int64_t blocks = ceil_div(guard->count, 256);
    if (blocks > 4096) blocks = 4096;
    if (error == cudaSuccess) {
        if (spec.distinct) {
            check_kernel<true><<<(unsigned)blocks, 256, 0, stream>>>(
                *guard, seen, const_cast<unsigned long long *>(guard->repeated));
        } else {
            check_kernel<false><<<(unsigned)blocks, 256, 0, stream>>>(*guard, nullptr, nullptr);
        }
        error = cudaGetLastError();
    }
    if (error != cudaSuccess) {
        cudaGetLastError();
        release_guard(guard, stream);
        return q3_fail(error == cudaErrorMemoryAllocation ? Q3_OUT_OF_MEMORY : Q3_LAUNCH_FAILED, op,
                       "checking tensor '%s' failed: CUDA error %s: %s", name, cudaGetErrorName(error),
                       cudaGetErrorString(error));
    }
    return Q3_OK;
}

__global__ void withdraw_kernel(DeferredRecord *record, unsigned int ticket) {
    if (record->ticket == ticket && ticket != 0) {
        record->flag = 0;
        record->ticket = 0;
        record->position = ~0ull;
        record->named = 0;
        record->blocks_done = 0;
    }
}

void withdraw_check(IndexGuard *guard, cudaStream_t stream) {
    if (guard->record != nullptr && guard->ticket != 0) {
        withdraw_kernel<<<1, 1, 0, stream>>>(guard->record, guard->ticket);
        cudaGetLastError();  // the call is failing already; its own error is the one reported
    }
    release_guard(guard, stream);
}

void release_guard(IndexGuard *guard, cudaStream_t stream) {
    if (guard->scratch != nullptr && cudaFreeAsync(guard->scratch, stream) != cudaSuccess) cudaGetLastError();
    guard->scratch = nullptr;
}

}  // namespace q3r

using namespace q3r;

namespace {

// The message of a named failure, as the host checks word it.
int deferred_failure(const CheckNote &note, const DeferredRecord &r) {
    const long long value = r.value, low = note.low, limit = note.limit;
    const long long position = (long long)r.position;
    const long long group = note.per_group > 0 ? position / note.per_group : 0;
    const long long within = note.per_group > 0 ? position % note.per_group : position;
    if (r.kind == DEFERRED_OUT_OF_RANGE) {
        switch (note.style) {
        case DEFERRED_IDS:
            return q3_fail(Q3_BAD_VALUE, note.op,
                           "tensor '%s' holds %lld at flat position %lld, outside the vocabulary [0, %lld)", note.name,
                           value, position, limit);
        case DEFERRED_GROUPED:
            return q3_fail(Q3_BAD_VALUE, note.op, "tensor '%s' holds %lld at [%lld, %lld], outside [0, %lld)",
                           note.name, value, group, within, limit);
        case DEFERRED_FLAT:
            return q3_fail(Q3_BAD_VALUE, note.op, "tensor '%s' holds %lld at [%lld], outside [0, %lld)", note.name,
                           value, position, limit);
        case DEFERRED_LENGTHS:
            return q3_fail(Q3_BAD_VALUE, note.op, "tensor '%s' holds %lld for request %lld, outside [%lld, %lld]",
                           note.name, value, position, low, limit - 1);
        case DEFERRED_UNIFORMS: {
            double real;
            memcpy(&real, &r.value, sizeof real);
            return q3_fail(Q3_BAD_VALUE, note.op, "tensor '%s' holds %g for row %lld, outside [0, 1)", note.name, real,
                           position);
        }
        }
    }
    if (note.style == DEFERRED_GROUPED) {
        return q3_fail(Q3_BAD_VALUE, note.op, "tensor '%s' holds %lld twice for request %lld", note.name, value,
                       group);
    }
    return q3_fail(Q3_BAD_VALUE, note.op, "tensor '%s' holds %lld twice", note.name, value);
}

}  // namespace

extern "C" int q3_take_deferred_error(void *stream) {
    static const char op[] = "take_deferred_error";
    q3_clear_error();
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess) {
        cudaGetLastError();
        return Q3_OK;  // no device: no check ever ran
    }
    DeviceState *state = device_state(device);
    if (state == nullptr || state->record == nullptr) return Q3_OK;
    DeferredRecord r;
    cudaError_t error = cudaStreamSynchronize(static_cast<cudaStream_t>(stream));
    if (error == cudaSuccess) error = cudaMemcpy(&r, state->record, sizeof r, cudaMemcpyDeviceToHost);
    if (error != cudaSuccess) {
        cudaGetLastError();
        return q3_fail(Q3_LAUNCH_FAILED, op, "cannot read the record of index checks: %s", cudaGetErrorString(error));
    }
    if (r.flag == 0) return Q3_OK;
    CheckNote note;
    {
        std::lock_guard<std::mutex> lock(state_mutex());
        note = state->notes[r.ticket % NOTES];
    }
    const DeferredRecord initial = empty_record();
    error = cudaMemcpy(state->record, &initial, sizeof initial, cudaMemcpyHostToDevice);
    if (error != cudaSuccess) cudaGetLastError();
    if (note.ticket != r.ticket || note.op == nullptr) {
        return q3_fail(Q3_BAD_VALUE, op, "an index check failed in a call no longer remembered (more than %u "
                                         "checked calls since the last take)", NOTES);
    }
    if (!r.named) {
        return q3_fail(Q3_BAD_VALUE, note.op, "tensor '%s' holds a value outside [%lld, %lld) or repeated",
                       note.name, (long long)note.low, (long long)note.limit);
    }
    return deferred_failure(note, r);
}
