// The CPU kernels exist once per instruction set, each in its own namespace (isa_kernels.h), and
// the set that runs is chosen the way ATen chooses its own kernels: from torch's CPU capability,
// which honours ATEN_CPU_CAPABILITY=default|avx2|avx512, so a user or a test can force a lower set.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

#include "recurrence.h"
#include "step_kernel.h"

// x86-64 builds with GCC compile the AVX2 and AVX-512 sets besides the baseline; elsewhere (e.g.
// aarch64, where the baseline is NEON) the baseline is the only one.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CWRNN_X86_KERNELS 1
#else
#define CWRNN_X86_KERNELS 0
#endif

namespace cwrnn {

namespace baseline {
#include "isa_entry_points.inc"
}  // namespace baseline
#if CWRNN_X86_KERNELS
namespace avx2 {
#include "isa_entry_points.inc"
}  // namespace avx2
namespace avx512 {
#include "isa_entry_points.inc"
}  // namespace avx512
#endif

enum class CpuKernels { kBaseline, kAvx2, kAvx512 };

// The set the kernels run with: torch's capability, lowered to what this CPU and build have.
CpuKernels cpu_kernels();

// Its name as torch.backends.cpu.get_cpu_capability() spells capabilities: "DEFAULT", "AVX2", "AVX512".
const char* cpu_kernels_name();

}  // namespace cwrnn
