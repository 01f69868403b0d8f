"""Backends: named tables of kernels per device (native, the torch control, or a plugin module)."""
