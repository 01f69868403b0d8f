// The host-side argument checks shared with the CPU library (cpu/contracts.h), compiled in here.
#include "../cpu/contracts.c"
