// Compiles the CPU kernels for one instruction set. A translation unit per set (kernels_*.cpp)
// defines the set's namespace and vector shape (simd.h), includes this header, and wraps it in
// the set's target pragma. Every header from outside the kernels is included here first, before
// that pragma, so that no library function is compiled for a set the running CPU may lack (the
// linker keeps one copy of each inline function, whichever translation unit it comes from).
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "../schedule.h"
#include "recurrence.h"
#include "step_kernel.h"

#if defined(CWRNN_ISA_TARGET_PRAGMA)
#pragma GCC push_options
CWRNN_ISA_TARGET_PRAGMA
#endif

#include "recurrence_kernels.h"
#include "step_kernels.h"

#if defined(CWRNN_ISA_TARGET_PRAGMA)
#pragma GCC pop_options
#endif
