// MADDNESS on the GPU against the CPU model: packed codes byte for byte and outputs bit for
// bit (both sides sum the same integers and round twice the same way), over the CPU kernel
// tests' shape grid (odd N, M = 1, C not a power of two, D not divisible by C), both layouts
// with padded leading dimensions and unaligned starts, both accumulation modes; then the
// chunked paths of large C, many output tiles, ties and infinities, NaN, files, streams and
// bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <thread>
#include <tuple>

#include "../cpp/test_util.h"
#include "gpu_test_util.h"
#include "lutmul/lutmul.h"

namespace lutmul {
namespace {

constexpr int64_t kDim = 100;

// One encoder per (D, C, prototypes), weights per M; averaged mode on request.
Maddness trained(int64_t d, int c, int64_t m, Accumulation accumulation,
                 PrototypeMethod prototypes = PrototypeMethod::ridge) {
  static std::map<std::tuple<int64_t, int, int>, std::unique_ptr<Maddness>> encoders;
  auto& encoder = encoders[{d, c, static_cast<int>(prototypes)}];
  if (!encoder) {
    MaddnessConfig config;
    config.ncodebooks = c;
    config.prototypes = prototypes;
    encoder = std::make_unique<Maddness>(config);
    const std::vector<float> train = testing::low_rank_rows(512, d, 8, 0.3f, static_cast<uint64_t>(d * 1000 + c));
    encoder->fit_encoder(MatrixView::row_major(train.data(), 512, d));
  }
  Maddness model = *encoder;
  const std::vector<float> b = testing::uniform(d, m, -1.f, 1.f, static_cast<uint64_t>(m + 17));
  const std::vector<float> bias = testing::uniform(1, m, -2.f, 2.f, static_cast<uint64_t>(m + 3));
  model.set_weights(MatrixView::row_major(b.data(), d, m), bias.data());
  model.set_accumulation(accumulation);
  return model;
}

// Test rows: like the training data, plus uniform rows (other buckets) and exact ties.
std::vector<float> test_rows(const Maddness& model, int64_t n, uint64_t seed) {
  const int64_t d = model.input_dim();
  std::vector<float> a = testing::low_rank_rows(n, d, 8, 0.3f, seed);
  const std::vector<float> u = testing::uniform(n, d, -3.f, 3.f, seed + 1);
  for (int64_t i = 0; i < n; ++i) {
    if (i % 3 == 1)
      for (int64_t j = 0; j < d; ++j) a[i * d + j] = u[i * d + j];
    if (i % 5 == 2) {  // x == threshold must go left (x > t is strict)
      const int c = static_cast<int>(i % model.ncodebooks());
      a[i * d + model.split_dim(c, 0)] = model.threshold(c, 0, 0);
    }
  }
  return a;
}

// Index and values of the first difference, for a readable failure.
std::string first_difference(const std::vector<float>& expected, const std::vector<float>& got, int64_t ld) {
  for (size_t i = 0; i < expected.size(); ++i)
    if (std::memcmp(&expected[i], &got[i], sizeof(float)) != 0) {
      std::ostringstream out;
      out << "first difference at row " << static_cast<int64_t>(i) / ld << ", column " << static_cast<int64_t>(i) % ld
          << ": expected " << expected[i] << ", got " << got[i] << " (max |diff| "
          << testing::max_abs_difference(expected, got) << ")";
      return out.str();
    }
  return "";
}

// Every GPU entry point against the CPU model, both layouts.
void expect_gpu_equals_cpu(const Maddness& model, const std::vector<float>& a, int64_t n) {
  const int64_t d = model.input_dim(), m = model.output_dim();
  const cuda::MaddnessGpu gpu(model);
  ASSERT_EQ(model.encode(MatrixView::row_major(a.data(), n, d)).packed_bytes(), gpu.code_bytes(n));
  const EncodedRows cpu_codes = model.encode(MatrixView::row_major(a.data(), n, d));
  const int64_t ldy = m + 3;
  const float fill = -12345.f;
  std::vector<float> cpu_y(static_cast<size_t>(n * ldy), fill);
  model.scan(cpu_codes, cpu_y.data(), ldy);
  const std::vector<uint8_t> cpu_bytes(cpu_codes.packed_data(), cpu_codes.packed_data() + cpu_codes.packed_bytes());

  for (Layout layout : {Layout::row_major, Layout::col_major}) {
    SCOPED_TRACE(layout == Layout::row_major ? "row-major A" : "column-major A");
    const testing::DeviceMatrix da = testing::to_device(a, n, d, layout, layout == Layout::row_major ? 5 : 3, 1);
    cuda::DeviceBuffer<uint8_t> codes(gpu.code_bytes(n));
    codes.upload(std::vector<uint8_t>(codes.size(), 0xAB).data(), codes.size());  // every byte must be written
    gpu.encode(da.view, codes.data());
    const std::vector<uint8_t> gpu_bytes = codes.download();
    ASSERT_EQ(cpu_bytes, gpu_bytes) << "packed codes differ";

    cuda::DeviceBuffer<float> y = testing::filled_device(n, ldy, fill);
    gpu.scan(codes.data(), n, y.data(), ldy);
    std::vector<float> gpu_y = y.download();
    gpu_y.resize(cpu_y.size());
    ASSERT_EQ("", first_difference(cpu_y, gpu_y, ldy)) << "scan";

    cuda::DeviceBuffer<float> y2 = testing::filled_device(n, ldy, fill);
    gpu.matmul(da.view, y2.data(), ldy);
    std::vector<float> gpu_y2 = y2.download();
    gpu_y2.resize(cpu_y.size());
    ASSERT_EQ("", first_difference(cpu_y, gpu_y2, ldy)) << "matmul";
    ASSERT_TRUE(testing::padding_untouched(gpu_y2, n, m, ldy, fill));
  }
}

using GridParam = std::tuple<int64_t, int64_t, int>;  // N, M, C

class MaddnessGpuGrid : public ::testing::TestWithParam<GridParam> {};

TEST_P(MaddnessGpuGrid, CodesAndOutputsEqualTheCpuModel) {
  LUTMUL_REQUIRE_GPU();
  const auto [n, m, c] = GetParam();
  for (Accumulation accumulation : {Accumulation::exact, Accumulation::averaged}) {
    SCOPED_TRACE(accumulation == Accumulation::exact ? "exact" : "averaged");
    const Maddness model = trained(kDim, c, m, accumulation);
    const std::vector<float> a = test_rows(model, n, static_cast<uint64_t>(n * 31 + c));
    expect_gpu_equals_cpu(model, a, n);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, MaddnessGpuGrid,
                         ::testing::Combine(::testing::Values<int64_t>(1, 31, 32, 33, 64, 65, 1000, 10016),
                                            ::testing::Values<int64_t>(1, 3, 10, 100, 300),
                                            ::testing::Values(1, 2, 3, 8, 16, 24, 32, 64)));

// C > 256: the scan goes through shared memory in chunks of codebook pairs with 32-bit
// totals, and the row-major encoder gathers its columns in several chunks.
TEST(MaddnessGpu, LargeCodebookCountsUseTheChunkedPaths) {
  LUTMUL_REQUIRE_GPU();
  for (int64_t m : {1, 37, 200})
    for (Accumulation accumulation : {Accumulation::exact, Accumulation::averaged}) {
      SCOPED_TRACE(::testing::Message() << "M = " << m << (accumulation == Accumulation::exact ? " exact" : " averaged"));
      const Maddness model = trained(320, 300, m, accumulation, PrototypeMethod::bucket_means);
      for (int64_t n : {1, 100, 2000}) {
        expect_gpu_equals_cpu(model, test_rows(model, n, static_cast<uint64_t>(n)), n);
        if (HasFatalFailure()) return;
      }
    }
}

TEST(MaddnessGpu, OneColumnPerCodebookAndManyOutputTiles) {
  LUTMUL_REQUIRE_GPU();
  const Maddness narrow = trained(24, 24, 5, Accumulation::exact);
  expect_gpu_equals_cpu(narrow, test_rows(narrow, 333, 1), 333);
  const Maddness wide = trained(kDim, 64, 700, Accumulation::exact);  // 11 output tiles of 64
  expect_gpu_equals_cpu(wide, test_rows(wide, 777, 2), 777);
  const Maddness wide_averaged = trained(kDim, 17, 1500, Accumulation::averaged);
  expect_gpu_equals_cpu(wide_averaged, test_rows(wide_averaged, 200, 3), 200);
}

TEST(MaddnessGpu, TiesInfinitiesAndExtremeValues) {
  LUTMUL_REQUIRE_GPU();
  const Maddness model = trained(kDim, 16, 10, Accumulation::exact);
  const int64_t n = 300;
  std::vector<float> a = test_rows(model, n, 9);
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i % 16), t = static_cast<int>((i / 16) % 4);
    const int node = static_cast<int>(i % (1 << t));
    float& x = a[static_cast<size_t>(i * kDim + model.split_dim(c, t))];
    switch (i % 6) {
      case 0: x = model.threshold(c, t, node); break;
      case 1: x = std::nextafter(model.threshold(c, t, node), inf); break;
      case 2: x = inf; break;
      case 3: x = -inf; break;
      case 4: x = 3e38f; break;
      default: x = -0.f; break;
    }
  }
  expect_gpu_equals_cpu(model, a, n);
}

TEST(MaddnessGpu, NanRaisesOrGoesLeft) {
  LUTMUL_REQUIRE_GPU();
  const Maddness model = trained(kDim, 8, 4, Accumulation::exact);
  const int64_t n = 70;
  std::vector<float> a = test_rows(model, n, 4);
  std::vector<float> as_left = a;  // -inf goes left at every node, as NaN must
  for (int64_t i : {0, 33, 69}) {
    a[static_cast<size_t>(i * kDim + model.split_dim(3, 2))] = std::nanf("");
    as_left[static_cast<size_t>(i * kDim + model.split_dim(3, 2))] = -std::numeric_limits<float>::infinity();
  }
  const cuda::MaddnessGpu gpu(model);
  const EncodedRows expected = model.encode(MatrixView::row_major(as_left.data(), n, kDim));
  for (Layout layout : {Layout::row_major, Layout::col_major}) {
    const testing::DeviceMatrix da = testing::to_device(a, n, kDim, layout);
    cuda::DeviceBuffer<uint8_t> codes(gpu.code_bytes(n));
    EXPECT_THROW(gpu.encode(da.view, codes.data()), Error);
    cuda::DeviceBuffer<float> y(static_cast<size_t>(n * 4));
    EXPECT_THROW(gpu.matmul(da.view, y.data(), 4), Error);
    gpu.encode(da.view, codes.data(), {}, /*check_nan=*/false);
    cuda::StreamView().synchronize();
    EXPECT_EQ(std::vector<uint8_t>(expected.packed_data(), expected.packed_data() + expected.packed_bytes()),
              codes.download());
  }
  // A NaN in a column no codebook reads is never seen.
  std::vector<bool> read(kDim, false);
  for (int c = 0; c < 8; ++c)
    for (int t = 0; t < 4; ++t) read[static_cast<size_t>(model.split_dim(c, t))] = true;
  std::vector<float> clean = test_rows(model, n, 4);
  for (int64_t j = 0; j < kDim; ++j)
    if (!read[static_cast<size_t>(j)]) clean[static_cast<size_t>(5 * kDim + j)] = std::nanf("");
  const testing::DeviceMatrix dc = testing::to_device(clean, n, kDim, Layout::row_major);
  cuda::DeviceBuffer<uint8_t> codes(gpu.code_bytes(n));
  EXPECT_NO_THROW(gpu.encode(dc.view, codes.data()));
}

TEST(MaddnessGpu, HostForwardIsTheOperatorContract) {
  LUTMUL_REQUIRE_GPU();
  const int64_t n = 257, m = 33;
  const Maddness model = trained(kDim, 16, m, Accumulation::exact);
  const std::vector<float> a = test_rows(model, n, 5);
  const cuda::MaddnessGpu gpu(model);
  EXPECT_EQ("maddness_gpu", gpu.kind());
  EXPECT_EQ(kDim, gpu.input_dim());
  EXPECT_EQ(m, gpu.output_dim());
  EXPECT_EQ(16, gpu.ncodebooks());
  EXPECT_GT(gpu.bytes(), 0);
  const int64_t ldy = m + 2;
  std::vector<float> expected(static_cast<size_t>(n * ldy), 7.f), got(expected), got_col(expected);
  model.matmul(MatrixView::row_major(a.data(), n, kDim), expected.data(), ldy);
  gpu.forward(MatrixView::row_major(a.data(), n, kDim), got.data(), ldy);
  const std::vector<float> a_col = testing::to_col_major(a, n, kDim);
  gpu.forward(MatrixView::col_major(a_col.data(), n, kDim), got_col.data(), ldy);
  EXPECT_EQ("", first_difference(expected, got, ldy));
  EXPECT_EQ("", first_difference(expected, got_col, ldy));
  const std::vector<float> b = testing::uniform(kDim, m, -1.f, 1.f, static_cast<uint64_t>(m + 17));
  const std::vector<float> bias = testing::uniform(1, m, -2.f, 2.f, static_cast<uint64_t>(m + 3));
  const MaddnessLinear cpu_op(model);
  EXPECT_DOUBLE_EQ(cpu_op.relative_error(MatrixView::row_major(a.data(), n, kDim), MatrixView::row_major(b.data(), kDim, m), bias.data()),
                   gpu.relative_error(MatrixView::row_major(a.data(), n, kDim), MatrixView::row_major(b.data(), kDim, m), bias.data()));
  std::vector<float> none(1);
  EXPECT_NO_THROW(gpu.forward(MatrixView::row_major(a.data(), 0, kDim), none.data(), m));
}

TEST(MaddnessGpu, OneModelFileDrivesCpuAndGpu) {
  LUTMUL_REQUIRE_GPU();
  const Maddness original = trained(kDim, 12, 20, Accumulation::exact);
  const std::vector<uint8_t> file = original.serialize();
  const Maddness loaded = Maddness::deserialize(file.data(), file.size());
  const int64_t n = 500;
  const std::vector<float> a = test_rows(original, n, 6);
  std::vector<float> cpu(static_cast<size_t>(n * 20)), gpu_y(cpu.size());
  original.matmul(MatrixView::row_major(a.data(), n, kDim), cpu.data(), 20);
  cuda::MaddnessGpu(loaded).forward(MatrixView::row_major(a.data(), n, kDim), gpu_y.data(), 20);
  EXPECT_EQ("", first_difference(cpu, gpu_y, 20));
}

TEST(MaddnessGpu, ConcurrentCallsOnTwoStreamsAgree) {
  LUTMUL_REQUIRE_GPU();
  const int64_t n = 4000, m = 50;
  const Maddness model = trained(kDim, 16, m, Accumulation::exact);
  const std::vector<float> a = test_rows(model, n, 8);
  std::vector<float> expected(static_cast<size_t>(n * m));
  model.matmul(MatrixView::row_major(a.data(), n, kDim), expected.data(), m);
  const cuda::MaddnessGpu gpu(model);
  const testing::DeviceMatrix da = testing::to_device(a, n, kDim, Layout::row_major);
  std::vector<std::vector<float>> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t)
    threads.emplace_back([&, t] {
      cuda::Stream stream;
      cuda::DeviceBuffer<float> y(static_cast<size_t>(n * m));
      for (int repeat = 0; repeat < 5; ++repeat) gpu.matmul(da.view, y.data(), m, stream, /*check_nan=*/repeat % 2 == 0);
      results[t] = y.download(stream);
    });
  for (auto& thread : threads) thread.join();
  for (const auto& r : results) EXPECT_EQ("", first_difference(expected, r, m));
}

TEST(MaddnessGpu, BadInputIsAnError) {
  LUTMUL_REQUIRE_GPU();
  EXPECT_THROW(cuda::MaddnessGpu{Maddness()}, Error);  // not fitted
  Maddness float_tables = trained(kDim, 8, 4, Accumulation::exact);
  float_tables.set_table_mode(TableMode::float32);
  EXPECT_THROW(cuda::MaddnessGpu{float_tables}, Error);
  const cuda::MaddnessGpu gpu(trained(kDim, 8, 4, Accumulation::exact));
  cuda::DeviceBuffer<float> a(static_cast<size_t>(10 * kDim)), y(40);
  cuda::DeviceBuffer<uint8_t> codes(gpu.code_bytes(10));
  EXPECT_THROW(gpu.encode(MatrixView::row_major(a.data(), 10, kDim - 1), codes.data()), Error);
  EXPECT_THROW(gpu.encode(MatrixView::row_major(a.data(), 10, kDim), nullptr), Error);
  EXPECT_THROW(gpu.encode(MatrixView::row_major(a.data(), 10, kDim, kDim - 1), codes.data()), Error);
  EXPECT_THROW(gpu.scan(codes.data(), 10, y.data(), 3), Error);
  EXPECT_THROW(gpu.scan(codes.data(), -1, y.data(), 4), Error);
  EXPECT_THROW(gpu.scan(nullptr, 10, y.data(), 4), Error);
  EXPECT_THROW(gpu.matmul(MatrixView::row_major(a.data(), 10, kDim), y.data(), 3), Error);
  EXPECT_THROW(gpu.matmul(MatrixView::row_major(a.data(), 10, kDim), nullptr, 4), Error);
  EXPECT_THROW(gpu.code_bytes(-1), Error);
  EXPECT_THROW(gpu.encode(MatrixView::row_major(a.data(), 10, kDim), codes.data() + 1), Error);  // misaligned
  EXPECT_THROW(gpu.scan(codes.data() + 1, 10, y.data(), 4), Error);
  EXPECT_NO_THROW(gpu.matmul(MatrixView::row_major(nullptr, 0, kDim), nullptr, 4));
}

}  // namespace
}  // namespace lutmul
