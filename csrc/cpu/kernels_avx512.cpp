// The CPU kernels for AVX-512 (F, BW, VL, DQ: ATen's AVX512 capability; isa_kernels.h).
#include "isa_dispatch.h"
#if CWRNN_X86_KERNELS
#define CWRNN_ISA avx512
#define CWRNN_VECTOR_BYTES 64
#define CWRNN_VECTOR_REGISTERS 32
#define CWRNN_ISA_TARGET_PRAGMA _Pragma("GCC target(\"avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c\")")
#include "isa_kernels.h"
#endif
