// Transposed copies of weight blocks, converted to the arithmetic type, for the CPU forward.
//
// ATen's copy_ of a transposed view is fast only for a whole contiguous matrix; for the blocks the
// forward needs (each group's columns of W_hh up to its end, about half the matrix) it goes
// element by element, which at large H costs more than a B = 1 forward's arithmetic.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

namespace cwrnn {

// dst[j * dst_stride + i] = src[i * src_stride + j] for i < rows, j < cols.
void transpose_into(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t cols);
void transpose_into(const double* src, int64_t src_stride, double* dst, int64_t dst_stride, int64_t rows, int64_t cols);
void transpose_into(const c10::BFloat16* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
                    int64_t cols);
void transpose_into(const c10::Half* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
                    int64_t cols);

}  // namespace cwrnn
