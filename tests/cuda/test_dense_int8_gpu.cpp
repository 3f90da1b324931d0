// cuBLAS dense and cuBLASLt int8 operators against their CPU references: dense within an
// error bound proportional to Σ|x·w| (per precision), int8 bit for bit with
// Int8Linear::forward_reference (same quantisation, exact integer product, same epilogue).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>
#include <tuple>

#include "../cpp/test_util.h"
#include "gpu_test_util.h"
#include "lutmul/lutmul.h"

namespace lutmul {
namespace {

using Shape = std::tuple<int64_t, int64_t, int64_t>;  // N, K, M

// Per-element tolerance: relative × Σ_k |x_ik·w_kj| (+ a tiny absolute floor).
std::string check_within(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& expected,
                         const std::vector<float>& got, int64_t n, int64_t k, int64_t m, int64_t ldy, double relative) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      double magnitude = 0;
      for (int64_t p = 0; p < k; ++p) magnitude += std::fabs(double{x[i * k + p]} * w[p * m + j]);
      const double e = expected[i * ldy + j], g = got[i * ldy + j];
      const double allowed = relative * magnitude + 1e-6 * (1 + std::fabs(e));
      if (!(std::fabs(e - g) <= allowed)) {
        std::ostringstream out;
        out << "(" << i << ", " << j << "): expected " << e << ", got " << g << ", allowed " << allowed;
        return out.str();
      }
    }
  return "";
}

class DenseGpuGrid : public ::testing::TestWithParam<Shape> {};

TEST_P(DenseGpuGrid, EveryPrecisionMatchesTheCpuProduct) {
  LUTMUL_REQUIRE_GPU();
  const auto [n, k, m] = GetParam();
  const std::vector<float> w = testing::uniform(k, m, -1.f, 1.f, static_cast<uint64_t>(k * 7 + m));
  const std::vector<float> x = testing::uniform(n, k, -1.f, 1.f, static_cast<uint64_t>(n + k));
  const std::vector<float> bias = testing::uniform(1, m, -1.f, 1.f, 5);
  const DenseLinear cpu(MatrixView::row_major(w.data(), k, m), bias.data());
  const int64_t ldy = m + 3;
  const float fill = -999.f;
  std::vector<float> expected(static_cast<size_t>(n * ldy), fill);
  cpu.forward(MatrixView::row_major(x.data(), n, k), expected.data(), ldy);
  // Unit roundoff of the inputs' format, twice (x and w), with room for fp32 accumulation.
  const std::vector<std::pair<cuda::GpuPrecision, double>> precisions = {
      {cuda::GpuPrecision::fp32, 2e-5}, {cuda::GpuPrecision::tf32, 2e-3},
      {cuda::GpuPrecision::bf16, 1.6e-2}, {cuda::GpuPrecision::fp16, 2e-3}};
  for (const auto& [precision, relative] : precisions) {
    const cuda::DenseGpu gpu(MatrixView::row_major(w.data(), k, m), bias.data(), precision);
    EXPECT_EQ(precision, gpu.precision());
    for (Layout layout : {Layout::row_major, Layout::col_major}) {
      SCOPED_TRACE(::testing::Message() << "precision " << static_cast<int>(precision)
                                        << (layout == Layout::row_major ? " row-major" : " column-major"));
      const testing::DeviceMatrix dx = testing::to_device(x, n, k, layout, 2, 1);
      cuda::DeviceBuffer<float> y = testing::filled_device(n, ldy, fill);
      gpu.forward_device(dx.view, y.data(), ldy);
      std::vector<float> got = y.download();
      got.resize(expected.size());
      ASSERT_EQ("", check_within(x, w, expected, got, n, k, m, ldy, relative));
      ASSERT_TRUE(testing::padding_untouched(got, n, m, ldy, fill));
      if (precision == cuda::GpuPrecision::bf16 || precision == cuda::GpuPrecision::fp16) {
        cuda::DeviceBuffer<uint16_t> converted(static_cast<size_t>(n * k));
        gpu.convert_input(dx.view, converted.data());
        cuda::DeviceBuffer<float> y2 = testing::filled_device(n, ldy, fill);
        gpu.forward_converted(converted.data(), n, y2.data(), ldy);
        std::vector<float> got2 = y2.download();
        got2.resize(expected.size());
        ASSERT_EQ(0, std::memcmp(got.data(), got2.data(), got.size() * sizeof(float)));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, DenseGpuGrid,
                         ::testing::Combine(::testing::Values<int64_t>(1, 3, 65, 200),
                                            ::testing::Values<int64_t>(1, 3, 64, 1000),
                                            ::testing::Values<int64_t>(1, 15, 100)));

TEST(DenseGpu, HostForwardRelativeErrorAndBadInput) {
  LUTMUL_REQUIRE_GPU();
  const int64_t n = 50, k = 40, m = 30;
  const std::vector<float> w = testing::uniform(k, m, -1.f, 1.f, 1), x = testing::uniform(n, k, -1.f, 1.f, 2);
  const cuda::DenseGpu gpu(MatrixView::row_major(w.data(), k, m));
  EXPECT_EQ("dense_gpu", gpu.kind());
  EXPECT_EQ(k * m * 4 + m * 4, gpu.bytes());
  EXPECT_LT(gpu.relative_error(MatrixView::row_major(x.data(), n, k), MatrixView::row_major(w.data(), k, m)), 1e-6);
  const std::vector<float> x_col = testing::to_col_major(x, n, k);
  const Matrix a = gpu.forward(MatrixView::row_major(x.data(), n, k));
  const Matrix b = gpu.forward(MatrixView::col_major(x_col.data(), n, k));
  // cuBLAS picks its kernel per transpose, and two kernels may sum in different orders (on an
  // H200 they differ in the last bit), so the layouts agree to fp32 rounding, not bit for bit.
  EXPECT_EQ("", check_within(x, w, a.values, b.values, n, k, m, m, 2e-5));
  std::vector<float> y(static_cast<size_t>(n * m));
  EXPECT_THROW(gpu.forward(MatrixView::row_major(x.data(), n, k - 1), y.data(), m), Error);
  EXPECT_THROW(gpu.forward(MatrixView::row_major(x.data(), n, k), y.data(), m - 1), Error);
  EXPECT_THROW(gpu.convert_input(MatrixView::row_major(x.data(), n, k), nullptr), Error);  // fp32 operator
  std::vector<float> bad = w;
  bad[3] = std::nanf("");
  EXPECT_THROW(cuda::DenseGpu(MatrixView::row_major(bad.data(), k, m)), Error);
  EXPECT_THROW(cuda::DenseGpu(MatrixView::row_major(w.data(), 0, m)), Error);
}

class Int8GpuGrid : public ::testing::TestWithParam<Shape> {};

TEST_P(Int8GpuGrid, EqualsTheCpuReferenceBitForBit) {
  LUTMUL_REQUIRE_GPU();
  const auto [n, k, m] = GetParam();
  const std::vector<float> w = testing::uniform(k, m, -1.f, 1.f, static_cast<uint64_t>(k * 7 + m));
  std::vector<float> x = testing::low_rank_rows(n, k, 4, 0.2f, static_cast<uint64_t>(n + k));
  if (n > 2) x[static_cast<size_t>(k)] = 1e4f;                                         // an outlier
  if (n > 3) std::fill(x.begin() + 2 * k, x.begin() + 3 * k, 0.f);                    // an all-zero row
  if (n > 4) {  // scale 1: halves are exact ties, rounded to even on both sides
    x[static_cast<size_t>(3 * k)] = 127.f;
    for (int64_t j = 1; j < k; ++j) x[static_cast<size_t>(3 * k + j)] = static_cast<float>(j % 7) - 3.f + 0.5f;
  }
  const std::vector<float> bias = testing::uniform(1, m, -1.f, 1.f, 5);
  const Int8Linear cpu(MatrixView::row_major(w.data(), k, m), bias.data());
  const cuda::Int8Gpu gpu(MatrixView::row_major(w.data(), k, m), bias.data());
  const int64_t ldy = m + 3;
  const float fill = -999.f;
  std::vector<float> expected(static_cast<size_t>(n * ldy), fill);
  cpu.forward_reference(MatrixView::row_major(x.data(), n, k), expected.data(), ldy);
  for (const char* gemm : {"cublaslt", "fallback"})  // LUTMUL_CUDA_INT8_GEMM: both integer products
    for (Layout layout : {Layout::row_major, Layout::col_major}) {
      SCOPED_TRACE(::testing::Message() << gemm << (layout == Layout::row_major ? " row-major" : " column-major"));
      setenv("LUTMUL_CUDA_INT8_GEMM", gemm, 1);
      const testing::DeviceMatrix dx = testing::to_device(x, n, k, layout, 3, 1);
      cuda::DeviceBuffer<float> y = testing::filled_device(n, ldy, fill);
      gpu.forward_device(dx.view, y.data(), ldy);
      unsetenv("LUTMUL_CUDA_INT8_GEMM");
      std::vector<float> got = y.download();
      got.resize(expected.size());
      ASSERT_EQ(0, std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float)))
          << "max |diff| " << testing::max_abs_difference(expected, got);
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Int8GpuGrid,
                         ::testing::Combine(::testing::Values<int64_t>(1, 3, 65, 200),
                                            ::testing::Values<int64_t>(1, 3, 4, 63, 64, 65, 1000),
                                            ::testing::Values<int64_t>(1, 15, 16, 17, 100)));

TEST(Int8Gpu, LargeProductEqualsTheReference) {
  LUTMUL_REQUIRE_GPU();
  const int64_t n = 1024, k = 1536, m = 768;
  const std::vector<float> w = testing::uniform(k, m, -1.f, 1.f, 3);
  const std::vector<float> x = testing::low_rank_rows(n, k, 16, 0.3f, 4);
  const Int8Linear cpu(MatrixView::row_major(w.data(), k, m));
  const cuda::Int8Gpu gpu(MatrixView::row_major(w.data(), k, m));
  std::vector<float> expected(static_cast<size_t>(n * m)), got(expected.size());
  cpu.forward_reference(MatrixView::row_major(x.data(), n, k), expected.data(), m);
  gpu.forward(MatrixView::row_major(x.data(), n, k), got.data(), m);
  EXPECT_EQ(0, std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float)))
      << "max |diff| " << testing::max_abs_difference(expected, got);
}

TEST(Int8Gpu, NonFiniteInputAndBadShapesAreErrors) {
  LUTMUL_REQUIRE_GPU();
  const int64_t n = 20, k = 30, m = 10;
  const std::vector<float> w = testing::uniform(k, m, -1.f, 1.f, 3);
  const cuda::Int8Gpu gpu(MatrixView::row_major(w.data(), k, m));
  EXPECT_EQ("int8_gpu", gpu.kind());
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    std::vector<float> x = testing::uniform(n, k, -1.f, 1.f, 4);
    x[static_cast<size_t>(7 * k + 29)] = bad;
    std::vector<float> y(static_cast<size_t>(n * m));
    EXPECT_THROW(gpu.forward(MatrixView::row_major(x.data(), n, k), y.data(), m), Error);
    const testing::DeviceMatrix dx = testing::to_device(x, n, k, Layout::row_major);
    cuda::DeviceBuffer<float> dy(y.size());
    EXPECT_NO_THROW(gpu.forward_device(dx.view, dy.data(), m, {}, /*check_finite=*/false));
    cuda::StreamView().synchronize();
  }
  std::vector<float> x = testing::uniform(n, k, -1.f, 1.f, 4), y(static_cast<size_t>(n * m));
  EXPECT_THROW(gpu.forward(MatrixView::row_major(x.data(), n, k + 1), y.data(), m), Error);
  EXPECT_THROW(gpu.forward(MatrixView::row_major(x.data(), n, k), nullptr, m), Error);
  EXPECT_THROW(cuda::Int8Gpu(MatrixView::row_major(w.data(), 0, m)), Error);
}

}  // namespace
}  // namespace lutmul
