// The CPU kernels for the architecture's baseline: SSE2 on x86-64, NEON on aarch64 (isa_kernels.h).
#define CWRNN_ISA baseline
#define CWRNN_VECTOR_BYTES 16
#if defined(__aarch64__)
#define CWRNN_VECTOR_REGISTERS 32
#else
#define CWRNN_VECTOR_REGISTERS 16
#endif
#include "isa_kernels.h"
