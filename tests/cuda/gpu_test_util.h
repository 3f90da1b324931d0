// Shared by the CUDA tests: the skip (or, with LUTMUL_CUDA_REQUIRE_DEVICE set, the failure)
// when no GPU is usable, and host data placed on the device with padded leading dimensions,
// unaligned starts and NaN padding, so a kernel that reads outside its matrix is caught.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "lutmul/cuda/cuda.h"

// Skips the test with the reason when no usable GPU is present. scripts/gpu_check.sh sets
// LUTMUL_CUDA_REQUIRE_DEVICE=1 so that on the GPU machine a missing device fails loudly.
#define LUTMUL_REQUIRE_GPU()                                                                  \
  do {                                                                                        \
    if (!::lutmul::cuda::available()) {                                                       \
      if (std::getenv("LUTMUL_CUDA_REQUIRE_DEVICE") != nullptr)                               \
        FAIL() << "LUTMUL_CUDA_REQUIRE_DEVICE is set but " << ::lutmul::cuda::unavailable_reason(); \
      GTEST_SKIP() << ::lutmul::cuda::unavailable_reason();                                   \
    }                                                                                         \
  } while (0)

namespace lutmul::testing {

// A matrix on the device: `view` points into `storage`.
struct DeviceMatrix {
  cuda::DeviceBuffer<float> storage;
  MatrixView view;
};

// row_major_values (rows × cols) stored on the device in `layout`, with `pad` extra
// elements per leading dimension and the start `misalign` floats past the allocation
// (so not 16-byte aligned). Padding holds NaN.
DeviceMatrix to_device(const std::vector<float>& row_major_values, int64_t rows, int64_t cols, Layout layout,
                       int64_t pad = 0, int64_t misalign = 0);

// Device Y of rows × cols with leading dimension ldy, every element set to `fill`.
cuda::DeviceBuffer<float> filled_device(int64_t rows, int64_t ldy, float fill);

// The largest |a − b| and whether every element of padding (columns ≥ cols of a row with
// leading dimension ld) still holds `fill`.
double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b);
bool padding_untouched(const std::vector<float>& y, int64_t rows, int64_t cols, int64_t ld, float fill);

}  // namespace lutmul::testing
