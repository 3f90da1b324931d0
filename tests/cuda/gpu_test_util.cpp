#include "gpu_test_util.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace lutmul::testing {

DeviceMatrix to_device(const std::vector<float>& values, int64_t rows, int64_t cols, Layout layout, int64_t pad,
                       int64_t misalign) {
  const bool row_major = layout == Layout::row_major;
  const int64_t ld = (row_major ? cols : rows) + pad;
  const int64_t lines = row_major ? rows : cols;
  std::vector<float> host(static_cast<size_t>(misalign + lines * ld + 1), std::numeric_limits<float>::quiet_NaN());
  float* start = host.data() + misalign;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) (row_major ? start[i * ld + j] : start[j * ld + i]) = values[i * cols + j];
  DeviceMatrix m{cuda::DeviceBuffer<float>(host), MatrixView{}};
  const float* device = m.storage.data() + misalign;
  m.view = row_major ? MatrixView::row_major(device, rows, cols, ld) : MatrixView::col_major(device, rows, cols, ld);
  return m;
}

cuda::DeviceBuffer<float> filled_device(int64_t rows, int64_t ldy, float fill) {
  return cuda::DeviceBuffer<float>(std::vector<float>(static_cast<size_t>(std::max<int64_t>(rows * ldy, 1)), fill));
}

double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double largest = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const double d = std::fabs(double{a[i]} - double{b[i]});
    if (std::isnan(d)) return d;
    largest = std::max(largest, d);
  }
  return largest;
}

bool padding_untouched(const std::vector<float>& y, int64_t rows, int64_t cols, int64_t ld, float fill) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = cols; j < ld; ++j)
      if (y[static_cast<size_t>(i * ld + j)] != fill) return false;
  return true;
}

}  // namespace lutmul::testing
