"""The native library: compiled from kernels/ and bound through ctypes."""
