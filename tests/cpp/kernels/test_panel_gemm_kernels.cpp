// The panel products (kernels/cpu/dense/), on float and on bfloat16 panels, at every SIMD level
// against their scalar references, bit for bit: both run each output's fused multiply-adds in
// the same order. Row counts on both sides of each level's tile height, M not a multiple of 16,
// strided X and Y, part of the panels, with and without a bias.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

#include "core/isa_sweep.h"
#include "core/kernel_registry.h"
#include "kernels/cpu/dense/panel_gemm.h"
#include "lutmul/operators/bf16_linear.h"
#include "test_util.h"

namespace lutmul::testing {
namespace {

using kernels::kPanelWidth;

// W's bfloat16 bit patterns (to nearest even).
std::vector<uint16_t> to_bf16(const std::vector<float>& w) {
  std::vector<uint16_t> out(w.size());
  for (size_t i = 0; i < w.size(); ++i) out[i] = to_bfloat16(w[i]);
  return out;
}

struct Problem {
  int64_t rows, k, m, ldx, ldy;
  std::vector<float> x, w, bias, panels;
  std::vector<uint16_t> bf16_panels;  // W rounded to bfloat16, in pair order

  Problem(int64_t rows_, int64_t k_, int64_t m_, uint64_t seed)
      : rows(rows_), k(k_), m(m_), ldx(k_ + 3), ldy(m_ + 5) {
    x = uniform(rows, ldx, -1.f, 1.f, seed);
    w = uniform(k, m, -1.f, 1.f, seed + 1);
    bias = uniform(1, m, -1.f, 1.f, seed + 2);
    panels.assign(static_cast<size_t>(kernels::panel_count(m) * k * kPanelWidth), std::nanf(""));
    kernels::pack_panels(w.data(), m, k, m, panels.data());
    bf16_panels.assign(panels.size(), 0x7fc0);  // NaN
    kernels::pack_bf16_panels(to_bf16(w).data(), m, k, m, bf16_panels.data());
  }

  // Y filled with a sentinel, then panels [begin, end) written by `gemm` (float or bfloat16
  // panels: each kernel reads its own).
  std::vector<float> run(kernels::PanelGemmFn gemm, bool with_bias, int64_t begin, int64_t end) const {
    std::vector<float> y(static_cast<size_t>(rows * ldy), -7.f);
    kernels::PanelGemmArgs args;
    args.x = x.data();
    args.ldx = ldx;
    args.rows = rows;
    args.k = k;
    args.panels = panels.data();
    args.bf16_panels = bf16_panels.data();
    args.bias = with_bias ? bias.data() : nullptr;
    args.m = m;
    args.y = y.data();
    args.ldy = ldy;
    gemm(args, begin, end);
    return y;
  }
};

std::vector<uint32_t> bits(const std::vector<float>& v) {
  std::vector<uint32_t> out(v.size());
  std::memcpy(out.data(), v.data(), v.size() * sizeof(float));
  return out;
}

TEST(PanelGemm, PackingPutsColumnsInPanelsWithZerosPastM) {
  const int64_t k = 3, m = 18;
  std::vector<float> w(static_cast<size_t>(k * m));
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i + 1);
  std::vector<float> panels(static_cast<size_t>(kernels::panel_count(m) * k * kPanelWidth), -1.f);
  ASSERT_EQ(kernels::panel_count(m), 2);
  kernels::pack_panels(w.data(), m, k, m, panels.data());
  for (int64_t p = 0; p < 2; ++p)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t c = 0; c < kPanelWidth; ++c) {
        const int64_t j = p * kPanelWidth + c;
        EXPECT_EQ(panels[static_cast<size_t>((p * k + i) * kPanelWidth + c)], j < m ? w[static_cast<size_t>(i * m + j)] : 0.f)
            << "panel " << p << " k " << i << " column " << c;
      }
}

TEST(PanelGemm, Bf16PackingPairsEachColumnWithTheOneEightPlacesOn) {
  const int64_t k = 2, m = 20;
  std::vector<uint16_t> w(static_cast<size_t>(k * m));
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(i + 1);
  std::vector<uint16_t> panels(static_cast<size_t>(kernels::panel_count(m) * k * kPanelWidth), 0xffff);
  kernels::pack_bf16_panels(w.data(), m, k, m, panels.data());
  for (int64_t p = 0; p < 2; ++p)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t pair = 0; pair < kPanelWidth / 2; ++pair)
        for (int64_t half = 0; half < 2; ++half) {
          const int64_t j = p * kPanelWidth + pair + half * kPanelWidth / 2;
          EXPECT_EQ(panels[static_cast<size_t>((p * k + i) * kPanelWidth + 2 * pair + half)], j < m ? w[static_cast<size_t>(i * m + j)] : 0)
              << "panel " << p << " k " << i << " pair " << pair << " half " << half;
        }
}

// A scalar reference against the double-precision product plus bias, W rounded to bfloat16
// for the bfloat16 panels.
void expect_reference_is_the_product(kernels::PanelGemmFn reference, bool bf16_weights) {
  const Problem problem(5, 37, 21, 11);
  const std::vector<float> y = problem.run(reference, true, 0, kernels::panel_count(21));
  for (int64_t r = 0; r < problem.rows; ++r)
    for (int64_t j = 0; j < problem.m; ++j) {
      double exact = problem.bias[static_cast<size_t>(j)];
      for (int64_t i = 0; i < problem.k; ++i) {
        const float w = problem.w[static_cast<size_t>(i * problem.m + j)];
        exact += static_cast<double>(problem.x[static_cast<size_t>(r * problem.ldx + i)]) *
                 (bf16_weights ? from_bfloat16(to_bfloat16(w)) : w);
      }
      EXPECT_NEAR(y[static_cast<size_t>(r * problem.ldy + j)], exact, 1e-5) << r << ", " << j << " bf16 " << bf16_weights;
    }
}

TEST(PanelGemm, ScalarReferencesAreTheProductPlusBias) {
  expect_reference_is_the_product(kernels::panel_gemm_scalar_kernel(), false);
  expect_reference_is_the_product(kernels::panel_gemm_bf16_scalar_kernel(), true);
}

// (level, rows, k, m)
class PanelGemmLevels : public LevelTest<Family::dense, std::tuple<Isa, int64_t, int64_t, int64_t>> {};

// The level's kernel and the scalar reference: float panels, then bfloat16 ones.
std::vector<std::pair<kernels::PanelGemmFn, kernels::PanelGemmFn>> kernel_pairs() {
  return {{detail::active_kernels().panel_gemm, detail::reference_kernels().panel_gemm},
          {detail::active_kernels().panel_gemm_bf16, detail::reference_kernels().panel_gemm_bf16}};
}

TEST_P(PanelGemmLevels, EqualsTheScalarReferenceBitForBit) {
  const auto [level, rows, k, m] = GetParam();
  const Problem problem(rows, k, m, static_cast<uint64_t>(rows * 1000 + k * 10 + m));
  const int64_t panels = kernels::panel_count(m);
  for (const auto& [simd, reference] : kernel_pairs()) {
    const char* weights = simd == detail::active_kernels().panel_gemm ? "float" : "bfloat16";
    for (bool with_bias : {true, false}) {
      EXPECT_EQ(bits(problem.run(simd, with_bias, 0, panels)), bits(problem.run(reference, with_bias, 0, panels)))
          << isa_name(level) << " " << weights << " bias " << with_bias;
      // The last panels only (a thread's share): the columns before them keep the sentinel.
      const int64_t begin = panels / 2;
      EXPECT_EQ(bits(problem.run(simd, with_bias, begin, panels)), bits(problem.run(reference, with_bias, begin, panels)))
          << isa_name(level) << " " << weights << " panels from " << begin;
    }
  }
}

TEST_P(PanelGemmLevels, NonFiniteInputsGiveTheReferenceNonFiniteOutputs) {
  const auto [level, rows, k, m] = GetParam();
  Problem problem(rows, k, m, 5);
  problem.x[0] = std::numeric_limits<float>::infinity();
  problem.x[static_cast<size_t>((rows - 1) * problem.ldx + k - 1)] = std::nanf("");
  const int64_t panels = kernels::panel_count(m);
  for (const auto& [simd_kernel, reference_kernel] : kernel_pairs()) {
    const std::vector<float> simd = problem.run(simd_kernel, true, 0, panels);
    const std::vector<float> reference = problem.run(reference_kernel, true, 0, panels);
    for (size_t i = 0; i < simd.size(); ++i) {
      ASSERT_EQ(std::isnan(simd[i]), std::isnan(reference[i])) << isa_name(level) << " at " << i;
      if (!std::isnan(simd[i])) {
        ASSERT_EQ(simd[i], reference[i]) << isa_name(level) << " at " << i;
      }
    }
  }
}

// Rows, for every way the AVX2 kernel splits them: 1-3 swept two or four panels at a time,
// 4-6 one tile, 7 as 6 and a sweep of 1, more in balanced tiles of 4-6 (13 = 5 + 4 + 4,
// 16 = 6 + 5 + 5), and at k = 384 a second chunk (100 = 84 + 16).
INSTANTIATE_TEST_SUITE_P(Shapes, PanelGemmLevels,
                         ::testing::ValuesIn(level_grid(Family::dense, simd_levels(), std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 32, 100},
                                                        std::vector<int64_t>{1, 17, 384}, std::vector<int64_t>{1, 15, 16, 17, 100})),
                         [](const ::testing::TestParamInfo<std::tuple<Isa, int64_t, int64_t, int64_t>>& shape) {
                           return isa_name(std::get<0>(shape.param)) + "_rows" + std::to_string(std::get<1>(shape.param)) + "_k" +
                                  std::to_string(std::get<2>(shape.param)) + "_m" + std::to_string(std::get<3>(shape.param));
                         });

}  // namespace
}  // namespace lutmul::testing
