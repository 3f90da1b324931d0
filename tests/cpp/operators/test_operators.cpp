// The operator contract: dense against exact math, int8 kernels against their scalar
// reference bit for bit, int8 error on structured data, and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "../core/isa_sweep.h"
#include "core/kernel_registry.h"
#include "kernels/cpu/int8/int8_kernels.h"
#include "operators/operator_skeleton.h"
#include "lutmul/lutmul.h"
#include "test_util.h"

namespace lutmul {
namespace {

using testing::Family;
using testing::LevelTest;

using Shape = std::tuple<int64_t, int64_t, int64_t>;  // N, K, M
using LevelShape = std::tuple<Isa, int64_t, int64_t, int64_t>;

// "avx2_N3_K63_M17".
std::string level_shape_name(const ::testing::TestParamInfo<LevelShape>& param_info) {
  return isa_name(std::get<0>(param_info.param)) + "_N" + std::to_string(std::get<1>(param_info.param)) + "_K" +
         std::to_string(std::get<2>(param_info.param)) + "_M" + std::to_string(std::get<3>(param_info.param));
}

// Every SIMD level's int8 kernels against the scalar reference (isa_sweep.h).
class Int8Grid : public LevelTest<Family::int8, LevelShape> {};

TEST_P(Int8Grid, KernelsEqualTheScalarReference) {
  const auto [isa, n, k, m] = GetParam();
  (void)isa;
  const std::vector<float> w = testing::uniform(k, m, -1.f, 1.f, static_cast<uint64_t>(k * 7 + m));
  std::vector<float> x = testing::low_rank_rows(n, k, 4, 0.2f, static_cast<uint64_t>(n + k));
  if (n > 2) x[static_cast<size_t>(k)] = 1e4f;  // an outlier, clamped under static scaling
  const std::vector<float> bias = testing::uniform(1, m, -1.f, 1.f, 5);
  const std::vector<float> x_col = testing::to_col_major(x, n, k);
  for (const auto& [dynamic, smoothing] : {std::pair{true, 0.0}, {false, 0.0}, {true, 0.5}, {false, 0.8}}) {
    Int8Config config;
    config.activations = dynamic ? ActivationScaling::dynamic_per_row : ActivationScaling::static_per_tensor;
    config.calibration_percentile = 99.0;
    config.smoothing = smoothing;
    const MatrixView calibration = MatrixView::row_major(x.data(), n, k);
    const Int8Linear op(MatrixView::row_major(w.data(), k, m), bias.data(), config, &calibration);
    const int64_t ldy = m + 3;
    std::vector<float> expected(static_cast<size_t>(n * ldy), -1.f), got(expected), got_col(expected);
    op.forward_reference(MatrixView::row_major(x.data(), n, k), expected.data(), ldy);
    op.forward(MatrixView::row_major(x.data(), n, k), got.data(), ldy);
    op.forward(MatrixView::col_major(x_col.data(), n, k), got_col.data(), ldy);
    ASSERT_EQ(0, std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float)))
        << (dynamic ? "dynamic" : "static") << " scaling, smoothing " << smoothing << ", isa " << isa_name(active_isa());
    ASSERT_EQ(0, std::memcmp(expected.data(), got_col.data(), expected.size() * sizeof(float)));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Int8Grid,
                         ::testing::ValuesIn(testing::level_grid(Family::int8, testing::simd_levels(),
                                                                 std::vector<int64_t>{1, 3, 65, 200},
                                                                 std::vector<int64_t>{1, 3, 4, 63, 65, 1000},
                                                                 std::vector<int64_t>{1, 15, 16, 17, 100})),
                         level_shape_name);

}  // namespace

// Runs any built int8 kernel table through Int8Linear's own forward path.
struct Int8KernelProbe {
  static void forward(const Int8Linear& op, const kernels::Int8KernelTable& table, const MatrixView& X, float* Y,
                      int64_t ldy) {
    op.forward_with(table, X, Y, ldy);
  }
};

namespace {

// Every int8 kernel variant this CPU can run against the reference: the levels pick one
// variant each, so the level sweep alone would miss some.
TEST(Int8Variants, EveryRunnableKernelEqualsTheReference) {
  int ran = 0;
  for (const detail::Int8Variant& candidate : detail::runnable_int8_variants()) {
    if (std::string(candidate.name) == "scalar") continue;
    ++ran;
    // K 4,100: past the rows the AVX2 kernel widens up front (4,096 values).
    for (const auto& [n, k, m] :
         {Shape{1, 3, 1}, Shape{5, 63, 17}, Shape{65, 1000, 100}, Shape{200, 65, 16}, Shape{7, 4100, 40}}) {
      const std::vector<float> w = testing::uniform(k, m, -1.f, 1.f, static_cast<uint64_t>(k + m));
      const std::vector<float> x = testing::low_rank_rows(n, k, 4, 0.2f, static_cast<uint64_t>(n));
      const std::vector<float> bias = testing::uniform(1, m, -1.f, 1.f, 5);
      const MatrixView calibration = MatrixView::row_major(x.data(), n, k);
      for (const double smoothing : {0.0, 0.5}) {
        Int8Config config;
        config.smoothing = smoothing;
        const Int8Linear op(MatrixView::row_major(w.data(), k, m), bias.data(), config, &calibration);
        const int64_t ldy = m + 1;
        std::vector<float> expected(static_cast<size_t>(n * ldy), -1.f), got(expected);
        op.forward_reference(MatrixView::row_major(x.data(), n, k), expected.data(), ldy);
        Int8KernelProbe::forward(op, candidate.table, MatrixView::row_major(x.data(), n, k), got.data(), ldy);
        ASSERT_EQ(0, std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float)))
            << candidate.name << " N " << n << " K " << k << " M " << m << " smoothing " << smoothing;
      }
    }
  }
  std::printf("%d int8 kernels checked\n", ran);
  if (ran == 0) GTEST_SKIP() << "this CPU or build runs none of the SIMD int8 kernels (no AVX2)";
}

// fixed_row_blocks: consecutive blocks from row 0 of the given sizes, the largest only where
// every thread gets one, and fewer rows left over than the smallest size.
TEST(FixedRowBlocks, CoverAPrefixWithWholeBlocks) {
  constexpr int64_t kSizes[] = {64, 32};
  for (const int threads : {1, 2, 3})
    for (int64_t rows = 0; rows <= 300; ++rows) {
      int64_t covered = -1;
      const auto blocks = detail::fixed_row_blocks(rows, threads, kSizes, covered);
      int64_t next = 0, small = 0;
      for (const auto& [first, size] : blocks) {
        ASSERT_EQ(next, first) << rows << " rows, " << threads << " threads";
        ASSERT_TRUE(size == 64 || size == 32);
        next += size;
        small += size == 32;
      }
      ASSERT_EQ(next, covered);
      ASSERT_LT(rows - covered, 32) << rows << " rows, " << threads << " threads";
      // 64-row blocks as many as fit where every thread gets one; else 32-row blocks alone.
      const int64_t most = static_cast<int64_t>(blocks.size()) - small;
      ASSERT_EQ(most, rows >= 64 * threads ? rows / 64 : 0) << rows << " rows, " << threads << " threads";
    }
}

// The epilogue that turns oneDNN's integer sums into Y, per variant, against the reference:
// extreme sums, scales of every magnitude, M not a multiple of 8 or 16, a wider Y.
TEST(Int8Variants, EveryEpilogueEqualsTheReferenceBitForBit) {
  const kernels::Int8KernelTable& reference = kernels::int8_scalar_kernels();
  int ran = 0;
  for (const detail::Int8Variant& candidate : detail::runnable_int8_variants()) {
    if (std::string(candidate.name) == "scalar") continue;
    ++ran;
    for (const int64_t m : {1, 7, 8, 15, 16, 17, 100, 1536}) {
      const int64_t rows = 5, ldy = m + 3;
      std::mt19937 random(static_cast<uint32_t>(m));
      std::uniform_int_distribution<int32_t> sum(-(1 << 30), 1 << 30), column(-(1 << 22), 1 << 22);
      std::uniform_real_distribution<float> exponent(-20.f, 20.f), unit(-1.f, 1.f);
      std::vector<int32_t> sums(static_cast<size_t>(rows * m)), column_sums(static_cast<size_t>(m));
      std::vector<float> row_scales(rows), weight_scales(static_cast<size_t>(m)), bias(static_cast<size_t>(m));
      for (int32_t& v : sums) v = sum(random);
      for (int32_t& v : column_sums) v = column(random);
      for (float& v : row_scales) v = std::exp2(exponent(random));
      for (float& v : weight_scales) v = std::exp2(exponent(random)) * unit(random);
      for (float& v : bias) v = unit(random) * std::exp2(exponent(random));
      kernels::Int8EpilogueArgs args;
      args.sums = sums.data();
      args.m = m;
      args.column_sums = column_sums.data();
      args.row_scales = row_scales.data();
      args.weight_scales = weight_scales.data();
      args.bias = bias.data();
      args.ldy = ldy;
      std::vector<float> expected(static_cast<size_t>(rows * ldy), -1.f), got(expected);
      args.y = expected.data();
      reference.epilogue(args, 0, rows);
      args.y = got.data();
      candidate.table.epilogue(args, 1, rows);  // a row range that does not start at 0
      candidate.table.epilogue(args, 0, 1);
      ASSERT_EQ(0, std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float)))
          << candidate.name << " M " << m;
    }
  }
  std::printf("%d int8 epilogues checked\n", ran);
  if (ran == 0) GTEST_SKIP() << "this CPU or build runs none of the SIMD int8 kernels (no AVX2)";
}

// Int8Linear at every level (isa_sweep.h).
class Int8 : public LevelTest<Family::int8> {};

TEST_P(Int8, LargestProductsStayExact) {
  // Every activation and weight at the extreme of its range: sums of 127·127·K that would
  // overflow 16-bit intermediates. The result is exactly the scaled integer sum.
  const int64_t n = 5, k = 1000, m = 33;
  std::vector<float> w(static_cast<size_t>(k * m), 1.f), x(static_cast<size_t>(n * k), -2.f);
  const Int8Linear op(MatrixView::row_major(w.data(), k, m));
  const Matrix y = op.forward(MatrixView::row_major(x.data(), n, k));
  Matrix reference(n, m);
  op.forward_reference(MatrixView::row_major(x.data(), n, k), reference.data(), m);
  if (level() != Isa::scalar) {  // at the scalar level y is the reference itself
    EXPECT_EQ(reference.values, y.values);
  }
  for (float v : y.values) EXPECT_NEAR(-2000.f, v, 1e-3f);
}

TEST_P(Int8, SmallErrorOnStructuredActivations) {
  const int64_t n = 256, k = 384, m = 96;
  const std::vector<float> x = testing::low_rank_rows(n, k, 16, 0.05f, 3);
  const std::vector<float> w = testing::low_rank_rows(k, m, 32, 0.5f, 4);
  const Int8Linear op(MatrixView::row_major(w.data(), k, m));
  const double err = op.relative_error(MatrixView::row_major(x.data(), n, k), MatrixView::row_major(w.data(), k, m));
  std::printf("int8 relative error %.4f\n", err);
  EXPECT_LT(err, 0.02);
  EXPECT_EQ(k * m + 3 * m * 4, op.bytes());  // packed int8, then scales, bias, column sums (M = 96 needs no padding)
}

// Activations whose few outlier channels set every row's scale, as in transformers: the
// smoothed operator's error is a fraction of the plain one's, and its factors follow
// s[k] = c[k]^α / w[k]^(1−α).
TEST_P(Int8, SmoothingCutsTheErrorOfOutlierChannels) {
  const int64_t n = 256, k = 384, m = 96;
  std::vector<float> x = testing::low_rank_rows(n, k, 16, 0.05f, 3);
  for (int64_t i = 0; i < n; ++i)
    for (const int64_t outlier : {7, 100, 301}) x[static_cast<size_t>(i * k + outlier)] *= 60.f;
  const std::vector<float> w = testing::low_rank_rows(k, m, 32, 0.5f, 4);
  const MatrixView X = MatrixView::row_major(x.data(), n, k), W = MatrixView::row_major(w.data(), k, m);
  const Int8Linear plain(W);
  Int8Config config;
  config.smoothing = 0.5;
  const Int8Linear smoothed(W, nullptr, config, &X);
  const double plain_error = plain.relative_error(X, W), smoothed_error = smoothed.relative_error(X, W);
  std::printf("int8 relative error with outlier channels: %.4f plain, %.4f smoothed\n", plain_error, smoothed_error);
  EXPECT_LT(smoothed_error, 0.5 * plain_error);
  EXPECT_LT(smoothed_error, 0.02);
  for (const int64_t channel : {int64_t{0}, int64_t{7}, int64_t{301}}) {
    double x_range = 0, w_range = 0;
    for (int64_t i = 0; i < n; ++i) x_range = std::max(x_range, std::fabs(double{x[static_cast<size_t>(i * k + channel)]}));
    for (int64_t j = 0; j < m; ++j) w_range = std::max(w_range, std::fabs(double{w[static_cast<size_t>(channel * m + j)]}));
    EXPECT_NEAR(std::sqrt(x_range / w_range), smoothed.smoothing_factor(channel), 1e-5 * std::sqrt(x_range / w_range));
    EXPECT_EQ(1.f, plain.smoothing_factor(channel));
  }
  EXPECT_EQ(plain.bytes() + k * 4, smoothed.bytes());  // the K factors
}

TEST(Dense, MatchesExactMath) {
  const int64_t n = 37, k = 29, m = 13;
  const std::vector<float> x = testing::uniform(n, k, -1.f, 1.f, 1), w = testing::uniform(k, m, -1.f, 1.f, 2);
  const std::vector<float> bias = testing::uniform(1, m, -1.f, 1.f, 3);
  const DenseLinear op(MatrixView::row_major(w.data(), k, m), bias.data());
  EXPECT_LT(op.relative_error(MatrixView::row_major(x.data(), n, k), MatrixView::row_major(w.data(), k, m), bias.data()),
            1e-6);
  const std::vector<float> x_col = testing::to_col_major(x, n, k);
  EXPECT_EQ(op.forward(MatrixView::row_major(x.data(), n, k)).values,
            op.forward(MatrixView::col_major(x_col.data(), n, k)).values);
  EXPECT_EQ("dense", op.kind());
  EXPECT_EQ(k * m, op.multiply_adds_per_row());
}

// Bad input to Int8Linear (NaN is found by the quantize kernel) at every level.
class Operators : public LevelTest<Family::int8> {};

TEST_P(Operators, BadInput) {
  std::vector<float> w = testing::uniform(8, 4, -1.f, 1.f, 1), x = testing::uniform(3, 8, -1.f, 1.f, 2);
  const Int8Linear op(MatrixView::row_major(w.data(), 8, 4));
  std::vector<float> wide(3 * 9);
  EXPECT_THROW(op.forward(MatrixView::row_major(wide.data(), 3, 9)), Error);
  std::vector<float> y(12);
  EXPECT_THROW(op.forward(MatrixView::row_major(x.data(), 3, 8), y.data(), 3), Error);
  x[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(op.forward(MatrixView::row_major(x.data(), 3, 8)), Error);
  w[2] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(Int8Linear(MatrixView::row_major(w.data(), 8, 4)), Error);
  EXPECT_THROW(DenseLinear(MatrixView::row_major(w.data(), 8, 4)), Error);
  w[2] = 0.f;
  Int8Config config;
  config.activations = ActivationScaling::static_per_tensor;
  EXPECT_THROW(Int8Linear(MatrixView::row_major(w.data(), 8, 4), nullptr, config), Error);
  config.calibration_percentile = 0;
  const MatrixView calibration = MatrixView::row_major(w.data(), 4, 8);
  EXPECT_THROW(Int8Linear(MatrixView::row_major(w.data(), 8, 4), nullptr, config, &calibration), Error);
  EXPECT_THROW(Int8Linear(MatrixView::row_major(w.data(), 0, 4)), Error);
  // Smoothing: α outside [0, 1] or NaN, or no calibration rows to take channel ranges from.
  for (const double smoothing : {-0.1, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    Int8Config smoothed;
    smoothed.smoothing = smoothing;
    EXPECT_THROW(Int8Linear(MatrixView::row_major(w.data(), 8, 4), nullptr, smoothed, &calibration), Error) << smoothing;
  }
  Int8Config smoothed;
  smoothed.smoothing = 0.5;
  EXPECT_THROW(Int8Linear(MatrixView::row_major(w.data(), 8, 4), nullptr, smoothed), Error);
  const Int8Linear plain(MatrixView::row_major(w.data(), 8, 4));
  EXPECT_THROW(plain.smoothing_factor(8), Error);
}

INSTANTIATE_TEST_SUITE_P(Isa, Int8, ::testing::ValuesIn(testing::every_level()), testing::LevelName());
INSTANTIATE_TEST_SUITE_P(Isa, Operators, ::testing::ValuesIn(testing::every_level()), testing::LevelName());

}  // namespace
}  // namespace lutmul

namespace lutmul {
namespace {

using SparseParam = std::tuple<Isa, int64_t, int64_t, int64_t, double>;  // isa, N, K, M, sparsity

// "avx2_N31_K7_M15_sparsity50".
std::string sparse_name(const ::testing::TestParamInfo<SparseParam>& param_info) {
  const auto& [isa, n, k, m, sparsity] = param_info.param;
  return isa_name(isa) + "_N" + std::to_string(n) + "_K" + std::to_string(k) + "_M" + std::to_string(m) + "_sparsity" +
         std::to_string(std::lround(100 * sparsity));
}

// N, K, M and sparsity at each of `levels`.
std::vector<SparseParam> sparse_grid(const std::vector<Isa>& levels) {
  return testing::level_grid(Family::sparse, levels, std::vector<int64_t>{1, 31, 33, 100}, std::vector<int64_t>{1, 7, 64, 300},
                             std::vector<int64_t>{1, 15, 17, 64}, std::vector<double>{0.0, 0.5, 0.9});
}

// One sparse operator of the grid's shape at the fixture's level, run three ways.
class SparseShape : public LevelTest<Family::sparse, SparseParam> {
 protected:
  void SetUp() override {
    LevelTest::SetUp();
    if (IsSkipped()) return;
    const auto [isa, n, k, m, sparsity] = GetParam();
    (void)isa;
    n_ = n, k_ = k, m_ = m, ldy_ = m + 2;
    w_ = testing::uniform(k, m, -1.f, 1.f, static_cast<uint64_t>(k + 3 * m));
    x_ = testing::uniform(n, k, -1.f, 1.f, static_cast<uint64_t>(n + k));
    bias_ = testing::uniform(1, m, -1.f, 1.f, 9);
    SparseConfig config;
    config.sparsity = sparsity;
    op_.emplace(MatrixView::row_major(w_.data(), k, m), bias_.data(), config);
    got_.assign(static_cast<size_t>(n * ldy_), -3.f);
    op_->forward(MatrixView::row_major(x_.data(), n, k), got_.data(), ldy_);
  }

  int64_t n_ = 0, k_ = 0, m_ = 0, ldy_ = 0;
  std::vector<float> w_, x_, bias_, got_;  // got_: forward at the level, row-major X
  std::optional<SparseLinear> op_;
};

// Every SIMD level's sparse kernel against the scalar reference, bit for bit.
class SparseGrid : public SparseShape {};

TEST_P(SparseGrid, KernelEqualsTheScalarReference) {
  std::vector<float> expected(got_.size(), -3.f), got_col(expected);
  op_->forward_reference(MatrixView::row_major(x_.data(), n_, k_), expected.data(), ldy_);
  const std::vector<float> x_col = testing::to_col_major(x_, n_, k_);
  op_->forward(MatrixView::col_major(x_col.data(), n_, k_), got_col.data(), ldy_);
  ASSERT_EQ(0, std::memcmp(expected.data(), got_.data(), expected.size() * sizeof(float))) << isa_name(level());
  ASSERT_EQ(0, std::memcmp(expected.data(), got_col.data(), expected.size() * sizeof(float)));
}

// Every level, the scalar one included: the same as the dense product of the pruned weight,
// to float tolerance.
class SparseProductGrid : public SparseShape {};

TEST_P(SparseProductGrid, ForwardIsThePrunedDenseProduct) {
  const auto sparsity = std::get<4>(GetParam());
  EXPECT_EQ(static_cast<int64_t>(std::llround((1 - sparsity) * static_cast<double>(k_ * m_))), op_->nonzeros());
  const std::vector<float> pruned = op_->pruned_dense();
  const std::vector<float> dense = testing::exact_product(x_, pruned, n_, k_, m_);
  for (int64_t i = 0; i < n_; ++i)
    for (int64_t j = 0; j < m_; ++j)
      ASSERT_NEAR(dense[i * m_ + j] + bias_[j], got_[i * ldy_ + j], 1e-4f * (1.f + std::fabs(dense[i * m_ + j])));
}

INSTANTIATE_TEST_SUITE_P(Shapes, SparseGrid,
                         ::testing::ValuesIn(sparse_grid(testing::simd_levels())),
                         sparse_name);
INSTANTIATE_TEST_SUITE_P(Shapes, SparseProductGrid,
                         ::testing::ValuesIn(sparse_grid(testing::every_level())),
                         sparse_name);

// SparseLinear at every level (isa_sweep.h).
class Sparse : public LevelTest<Family::sparse> {};

TEST_P(Sparse, CalibrationAwareScoringKeepsWhatTheDataUses) {
  // Anisotropic activations: a few input channels carry most of the energy.
  const int64_t n = 400, k = 96, m = 32;
  std::vector<float> x = testing::uniform(n, k, -1.f, 1.f, 1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < 8; ++j) x[i * k + j] *= 20.f;
  const std::vector<float> w = testing::uniform(k, m, -1.f, 1.f, 2);
  SparseConfig config;
  config.sparsity = 0.7;
  const MatrixView calibration = MatrixView::row_major(x.data(), n, k);
  const SparseLinear magnitude(MatrixView::row_major(w.data(), k, m), nullptr, config);
  const SparseLinear aware(MatrixView::row_major(w.data(), k, m), nullptr, config, &calibration);
  const MatrixView xv = MatrixView::row_major(x.data(), n, k), wv = MatrixView::row_major(w.data(), k, m);
  const double err_magnitude = magnitude.relative_error(xv, wv), err_aware = aware.relative_error(xv, wv);
  std::printf("70%% sparsity: magnitude %.4f, calibration-aware %.4f\n", err_magnitude, err_aware);
  EXPECT_LT(err_aware, err_magnitude * 0.8);
}

// Pruning only, no kernel: once.
TEST(SparsePruning, GlobalPruningRanksWeightsAcrossLayers) {
  // Layer 1's weights are ten times layer 0's: a global 60 % cut must take mostly from layer 0.
  const int64_t k0 = 48, m0 = 20, k1 = 32, m1 = 24;
  const std::vector<float> w0 = testing::uniform(k0, m0, -1.f, 1.f, 1);
  std::vector<float> w1 = testing::uniform(k1, m1, -1.f, 1.f, 2);
  for (float& v : w1) v *= 10.f;
  const std::vector<MatrixView> weights = {MatrixView::row_major(w0.data(), k0, m0),
                                           MatrixView::row_major(w1.data(), k1, m1)};
  const std::vector<SparseLinear> layers = prune_globally(weights, 0.6);
  ASSERT_EQ(2u, layers.size());
  const int64_t total = k0 * m0 + k1 * m1;
  EXPECT_EQ(std::llround(0.4 * static_cast<double>(total)), layers[0].nonzeros() + layers[1].nonzeros());
  EXPECT_GT(layers[1].nonzeros(), 3 * layers[0].nonzeros());
  // Every kept weight scores at least as high as every dropped one, across both layers.
  float smallest_kept = INFINITY, largest_dropped = 0.f;
  for (size_t l = 0; l < 2; ++l) {
    const std::vector<float> pruned = layers[l].pruned_dense();
    const std::vector<float>& w = l == 0 ? w0 : w1;
    for (size_t i = 0; i < w.size(); ++i) {
      if (pruned[i] != 0.f) smallest_kept = std::min(smallest_kept, std::fabs(w[i]));
      else largest_dropped = std::max(largest_dropped, std::fabs(w[i]));
    }
  }
  EXPECT_GE(smallest_kept, largest_dropped);
  // One layer: the same as pruning it alone.
  SparseConfig config;
  config.sparsity = 0.6;
  const SparseLinear alone(weights[0], nullptr, config);
  EXPECT_EQ(alone.pruned_dense(), prune_globally({weights[0]}, 0.6)[0].pruned_dense());
  // Bad input.
  EXPECT_THROW(prune_globally({}, 0.5), Error);
  EXPECT_THROW(prune_globally(weights, 1.0), Error);
  EXPECT_THROW(prune_globally(weights, 0.5, {nullptr}), Error);
  EXPECT_THROW(prune_globally(weights, 0.5, {}, {nullptr}), Error);
}

TEST_P(Sparse, BadInput) {
  std::vector<float> w = testing::uniform(8, 4, -1.f, 1.f, 1);
  SparseConfig config;
  config.sparsity = 1.0;
  EXPECT_THROW(SparseLinear(MatrixView::row_major(w.data(), 8, 4), nullptr, config), Error);
  config.sparsity = -0.1;
  EXPECT_THROW(SparseLinear(MatrixView::row_major(w.data(), 8, 4), nullptr, config), Error);
  w[0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(SparseLinear(MatrixView::row_major(w.data(), 8, 4)), Error);
  w[0] = 1.f;
  const SparseLinear op(MatrixView::row_major(w.data(), 8, 4));
  std::vector<float> x(3 * 8, 1.f);
  x[4] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(op.forward(MatrixView::row_major(x.data(), 3, 8)), Error);
  EXPECT_THROW(op.forward(MatrixView::row_major(x.data(), 3, 7)), Error);
}

INSTANTIATE_TEST_SUITE_P(Isa, Sparse, ::testing::ValuesIn(testing::every_level()), testing::LevelName());

}  // namespace
}  // namespace lutmul

namespace lutmul {
namespace {

TEST(ChannelPruned, EqualsTheDenseProductOfThePrunedWeight) {
  const int64_t n = 23, k = 40, m = 30;
  std::vector<float> w = testing::uniform(k, m, -1.f, 1.f, 4);
  for (int64_t i = 0; i < k; ++i) w[i * m + 7] *= 0.01f;  // output 7 and input 3: the weakest
  for (int64_t j = 0; j < m; ++j) w[3 * m + j] *= 0.01f;
  const std::vector<float> x = testing::uniform(n, k, -1.f, 1.f, 5), bias = testing::uniform(1, m, -1.f, 1.f, 6);
  for (PrunedChannels channels : {PrunedChannels::outputs, PrunedChannels::inputs}) {
    ChannelPruningConfig config;
    config.channels = channels;
    config.fraction = 0.4;
    const ChannelPrunedLinear op(MatrixView::row_major(w.data(), k, m), bias.data(), config);
    const bool outputs = channels == PrunedChannels::outputs;
    const auto& kept = outputs ? op.kept_outputs() : op.kept_inputs();
    EXPECT_EQ(static_cast<size_t>((outputs ? m : k) - std::llround(0.4 * static_cast<double>(outputs ? m : k))), kept.size());
    EXPECT_EQ(kept.end(), std::find(kept.begin(), kept.end(), outputs ? 7 : 3));  // the weak channel went
    std::vector<float> pruned(w.size(), 0.f);
    for (int64_t i : op.kept_inputs())
      for (int64_t j : op.kept_outputs()) pruned[i * m + j] = w[i * m + j];
    const std::vector<float> expected = testing::exact_product(x, pruned, n, k, m);
    const Matrix y = op.forward(MatrixView::row_major(x.data(), n, k));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) ASSERT_NEAR(expected[i * m + j] + bias[j], y(i, j), 1e-4);
    EXPECT_EQ(static_cast<double>(op.kept_inputs().size() * op.kept_outputs().size()), op.multiply_adds_per_row());
  }
  ChannelPruningConfig bad;
  bad.fraction = 1.0;
  EXPECT_THROW(ChannelPrunedLinear(MatrixView::row_major(w.data(), k, m), nullptr, bad), Error);
}

}  // namespace
}  // namespace lutmul
