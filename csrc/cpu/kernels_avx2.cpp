// The CPU kernels for AVX2 + FMA (ATen's AVX2 capability; isa_kernels.h).
#include "isa_dispatch.h"
#if CWRNN_X86_KERNELS
#define CWRNN_ISA avx2
#define CWRNN_VECTOR_BYTES 32
#define CWRNN_VECTOR_REGISTERS 16
#define CWRNN_ISA_TARGET_PRAGMA _Pragma("GCC target(\"avx2,fma,f16c\")")
#include "isa_kernels.h"
#endif
