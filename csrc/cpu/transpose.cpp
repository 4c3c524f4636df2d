#include "transpose.h"

#include <algorithm>

namespace cwrnn {
namespace {

// Square tiles small enough that a tile's source rows and destination rows stay in L1.
constexpr int64_t kTile = 16;

template <typename S, typename D>
void transpose_tiles(const S* src, int64_t src_stride, D* dst, int64_t dst_stride, int64_t rows, int64_t cols) {
  for (int64_t i0 = 0; i0 < rows; i0 += kTile) {
    const int64_t i1 = std::min(rows, i0 + kTile);
    for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
      const int64_t j1 = std::min(cols, j0 + kTile);
      for (int64_t j = j0; j < j1; ++j) {
        D* __restrict out = dst + j * dst_stride;
        for (int64_t i = i0; i < i1; ++i) out[i] = static_cast<D>(src[i * src_stride + j]);
      }
    }
  }
}

}  // namespace

void transpose_into(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t cols) {
  transpose_tiles(src, src_stride, dst, dst_stride, rows, cols);
}
void transpose_into(const double* src, int64_t src_stride, double* dst, int64_t dst_stride, int64_t rows,
                    int64_t cols) {
  transpose_tiles(src, src_stride, dst, dst_stride, rows, cols);
}
void transpose_into(const c10::BFloat16* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
                    int64_t cols) {
  transpose_tiles(src, src_stride, dst, dst_stride, rows, cols);
}
void transpose_into(const c10::Half* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
                    int64_t cols) {
  transpose_tiles(src, src_stride, dst, dst_stride, rows, cols);
}

}  // namespace cwrnn
