// The status strings, per-thread last error and host-side validation of the CPU library, compiled
// into the CUDA library so that both speak with one voice.
#include "../cpu/status.c"
