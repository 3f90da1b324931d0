// Bf16Linear: bfloat16 rounding, the product against a double-precision reference of the same
// rounded values and against the float product within bfloat16's rounding, on every shape of
// a grid, both layouts and two thread counts, whichever path this CPU runs (printed).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <vector>

#include "core/kernel_registry.h"
#include "lutmul/lutmul.h"
#include "test_util.h"

namespace lutmul {
namespace {

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(to_bfloat16(1.f), 0x3f80);
  EXPECT_EQ(from_bfloat16(to_bfloat16(-2.5f)), -2.5f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa, 1.
  EXPECT_EQ(to_bfloat16(1.f + 1.f / 256), 0x3f80);
  // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to the even one, 1 + 2^-6.
  EXPECT_EQ(from_bfloat16(to_bfloat16(1.f + 3.f / 256)), 1.f + 1.f / 64);
  EXPECT_EQ(from_bfloat16(to_bfloat16(1.f + 1.f / 256 + 1.f / 4096)), 1.f + 1.f / 128);  // above half: up
  EXPECT_TRUE(std::isnan(from_bfloat16(to_bfloat16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(from_bfloat16(to_bfloat16(std::numeric_limits<float>::infinity())), std::numeric_limits<float>::infinity());
  for (float x : {0.1f, -3.75e-20f, 6.5e30f, 1e-30f}) EXPECT_LE(std::fabs(from_bfloat16(to_bfloat16(x)) - x), std::fabs(x) / 256);
}

double rounded(float x) { return from_bfloat16(to_bfloat16(x)); }

TEST(Bf16, MatchesTheProductOfItsRoundedValuesOnEveryShape) {
  // With AMX, 300 rows run four blocks of 64, one of 32 and 12 rows padded to a block of 16;
  // 130 rows at two threads two blocks of 64 and 2 rows padded; 7 rows one padded block. A
  // wider Y runs the general primitive.
  for (const auto& [n, k, m] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {1, 37, 19}, {7, 64, 33},
                                {130, 129, 65}, {300, 384, 96}, {600, 48, 40}}) {
    const std::vector<float> w = testing::uniform(k, m, -1.f, 1.f, 21), bias = testing::uniform(1, m, -1.f, 1.f, 22);
    const std::vector<float> x = testing::uniform(n, k, -2.f, 2.f, 23);
    const Bf16Linear op(MatrixView::row_major(w.data(), k, m), bias.data());
    if (n == 300) std::cout << "[          ] Bf16Linear path on this CPU: " << op.path() << "\n";
    const std::vector<float> col = testing::to_col_major(x, n, k);
    for (const int threads : {1, 2}) {
      set_num_threads(threads);
      for (const bool column_major : {false, true}) {
        const MatrixView X = column_major ? MatrixView::col_major(col.data(), n, k) : MatrixView::row_major(x.data(), n, k);
        const Matrix y = op.forward(X);
        // Into a wider Y (a leading dimension past M runs the general primitive): the same
        // values up to summation order, and the columns past M untouched.
        const int64_t ldy = m + 3;
        std::vector<float> wide(static_cast<size_t>(n * ldy), -7.f);
        op.forward(X, wide.data(), ldy);
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < ldy; ++j) {
            const float got = wide[static_cast<size_t>(i * ldy + j)];
            if (j >= m) ASSERT_EQ(got, -7.f) << "column " << j << " past M was written";
            else ASSERT_NEAR(got, y.values[static_cast<size_t>(i * m + j)], 1e-5 * static_cast<double>(k)) << n << "x" << k << "x" << m;
          }
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < m; ++j) {
            double same_values = bias[j], exact = bias[j], magnitude = 0;
            for (int64_t p = 0; p < k; ++p) {
              same_values += rounded(x[i * k + p]) * rounded(w[p * m + j]);
              exact += static_cast<double>(x[i * k + p]) * w[p * m + j];
              magnitude += std::fabs(x[i * k + p] * w[p * m + j]);
            }
            // Float accumulation of the rounded values; bfloat16's rounding against the float product.
            ASSERT_NEAR(y.values[static_cast<size_t>(i * m + j)], same_values, 1e-5 * magnitude + 1e-6) << n << "x" << k << "x" << m << " " << i << "," << j;
            ASSERT_NEAR(y.values[static_cast<size_t>(i * m + j)], exact, magnitude / 128) << n << "x" << k << "x" << m;
          }
      }
    }
  }
  set_num_threads(2);
}

// The epilogues (GELU, the residual add, both), fused where AMX blocks run, against forward
// then the runtime's GELU pass: blocks of both sizes and the general rest, a dense and a wider
// Y, one and two threads.
TEST(Bf16, EpiloguesMatchTheProductThenTheEpilogue) {
  const int64_t n = 101, k = 96, m = 48;
  const std::vector<float> w = testing::uniform(k, m, -1.f, 1.f, 31), bias = testing::uniform(1, m, -1.f, 1.f, 32);
  const std::vector<float> x = testing::uniform(n, k, -1.f, 1.f, 33);
  const Bf16Linear op(MatrixView::row_major(w.data(), k, m), bias.data());
  std::cout << "[          ] Bf16Linear fuses epilogues here: " << (op.fuses_epilogue() ? "yes" : "no") << "\n";
  const MatrixView X = MatrixView::row_major(x.data(), n, k);
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    for (const int64_t ldy : {m, m + 3}) {
      std::vector<float> plain(static_cast<size_t>(n * ldy)), activated;
      op.forward(X, plain.data(), ldy);
      activated = plain;
      detail::active_kernels().runtime.gelu(activated.data(), ldy, m, nullptr, 0, n);
      std::vector<float> before(plain.size());
      for (size_t i = 0; i < before.size(); ++i) before[i] = static_cast<float>(i % 13) * 0.5f - 3.f;
      for (const bool gelu : {false, true})
        for (const bool accumulate : {false, true}) {
          std::vector<float> y = before;
          op.forward_with(X, y.data(), ldy, Epilogue{gelu ? Epilogue::Activation::gelu : Epilogue::Activation::none, accumulate});
          for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < ldy; ++j) {
              const size_t at = static_cast<size_t>(i * ldy + j);
              if (j >= m) {
                ASSERT_EQ(before[at], y[at]) << "column " << j << " past M was written";
                continue;
              }
              const float value = gelu ? activated[at] : plain[at];
              const float expected = accumulate ? before[at] + value : value;
              // Without GELU the same sums, so the same bits; with it oneDNN's erf.
              ASSERT_NEAR(expected, y[at], gelu ? 1e-6 * std::max(1.f, std::fabs(expected)) : 0.0)
                  << threads << " threads, ldy " << ldy << ", gelu " << gelu << ", accumulate " << accumulate << " at " << i
                  << ", " << j;
            }
        }
    }
  }
  set_num_threads(2);
}

// Two layers chained in bfloat16 (the runtime's feed-forward on AMX) give what forward gives
// through float activations, bit for bit: oneDNN rounds the first layer's output to nearest
// even as the second layer's forward would round it.
TEST(Bf16, ChainedInBfloat16MatchesTheFloatActivations) {
  const int64_t n = 101, k = 40, inner = 72, m = 24;
  const std::vector<float> w1 = testing::uniform(k, inner, -1.f, 1.f, 51), b1 = testing::uniform(1, inner, -1.f, 1.f, 52);
  const std::vector<float> w2 = testing::uniform(inner, m, -1.f, 1.f, 53), b2 = testing::uniform(1, m, -1.f, 1.f, 54);
  const std::vector<float> x = testing::uniform(n, k, -1.f, 1.f, 55);
  const Bf16Linear first(MatrixView::row_major(w1.data(), k, inner), b1.data());
  const Bf16Linear second(MatrixView::row_major(w2.data(), inner, m), b2.data());
  const MatrixView X = MatrixView::row_major(x.data(), n, k);
  const Epilogue gelu{Epilogue::Activation::gelu, false}, add{Epilogue::Activation::none, true};
  if (!first.fuses_epilogue()) {
    std::vector<uint16_t> activations(static_cast<size_t>(n * inner));
    EXPECT_THROW(first.forward_bf16_out(X, activations.data(), inner, gelu), Error);
    GTEST_SKIP() << "no AMX blocks here (" << first.path() << "): the chained path is an Error, checked";
  }
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    std::vector<float> activations(static_cast<size_t>(n * inner));
    first.forward_with(X, activations.data(), inner, gelu);
    std::vector<float> expected(static_cast<size_t>(n * m), 0.5f), got(expected);
    second.forward_with(MatrixView::row_major(activations.data(), n, inner), expected.data(), m, add);

    std::vector<uint16_t> chained(static_cast<size_t>(n * inner));
    first.forward_bf16_out(X, chained.data(), inner, gelu);
    for (size_t i = 0; i < chained.size(); ++i)
      ASSERT_EQ(to_bfloat16(activations[i]), chained[i]) << threads << " threads, activation " << i;
    second.forward_bf16_in(chained.data(), n, got.data(), m, add);
    ASSERT_EQ(0, std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float))) << threads << " threads";

    // A wider Y runs the general primitive: the same values up to summation order.
    const int64_t ldy = m + 3;
    std::vector<float> wide(static_cast<size_t>(n * ldy), 0.5f);
    second.forward_bf16_in(chained.data(), n, wide.data(), ldy, add);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < ldy; ++j)
        if (j >= m) ASSERT_EQ(0.5f, wide[static_cast<size_t>(i * ldy + j)]);
        else ASSERT_NEAR(expected[static_cast<size_t>(i * m + j)], wide[static_cast<size_t>(i * ldy + j)], 1e-4);
  }
  set_num_threads(2);

  // Bad input: a NaN in either X, a short leading dimension, null rows.
  std::vector<float> bad = x;
  bad[static_cast<size_t>(70 * k + 3)] = std::numeric_limits<float>::quiet_NaN();
  std::vector<uint16_t> chained(static_cast<size_t>(n * inner));
  EXPECT_THROW(first.forward_bf16_out(MatrixView::row_major(bad.data(), n, k), chained.data(), inner, gelu), Error);
  first.forward_bf16_out(X, chained.data(), inner, gelu);
  chained[static_cast<size_t>(40 * inner + 5)] = 0x7fc0;  // NaN
  std::vector<float> y(static_cast<size_t>(n * m));
  EXPECT_THROW(second.forward_bf16_in(chained.data(), n, y.data(), m, Epilogue{}), Error);
  EXPECT_THROW(second.forward_bf16_in(chained.data(), n, y.data(), m - 1, Epilogue{}), Error);
  EXPECT_THROW(second.forward_bf16_in(nullptr, n, y.data(), m, Epilogue{}), Error);
  EXPECT_THROW(first.forward_bf16_out(X, nullptr, inner, gelu), Error);
}

// NaNs whose bits would carry into the sign when rounded (and so become zero) stay NaN.
TEST(Bf16, EveryNaNInXIsAnError) {
  const std::vector<float> w = testing::uniform(8, 5, -1.f, 1.f, 41);
  const Bf16Linear op(MatrixView::row_major(w.data(), 8, 5));
  for (const uint32_t bits : {0x7fffffffu, 0xffffffffu, 0x7fff8000u, 0x7fc00000u, 0x7f800001u}) {
    std::vector<float> x = testing::uniform(3, 8, -1.f, 1.f, 42);
    std::memcpy(&x[13], &bits, sizeof bits);
    Matrix y(3, 5);
    EXPECT_THROW(op.forward(MatrixView::row_major(x.data(), 3, 8), y.data(), 5), Error) << std::hex << bits;
    const std::vector<float> col = testing::to_col_major(x, 3, 8);
    EXPECT_THROW(op.forward(MatrixView::col_major(col.data(), 3, 8), y.data(), 5), Error) << std::hex << bits;
  }
}

TEST(Bf16, SavesAndLoadsBitForBitAndBuildsByName) {
  const std::vector<float> w = testing::uniform(40, 24, -1.f, 1.f, 31), bias = testing::uniform(1, 24, -1.f, 1.f, 32);
  const std::vector<float> x = testing::uniform(50, 40, -1.f, 1.f, 33);
  const Bf16Linear op(MatrixView::row_major(w.data(), 40, 24), bias.data());
  const std::unique_ptr<LinearOperator> back = LinearOperator::deserialize(op.serialize().data(), op.serialize().size());
  ASSERT_EQ(back->kind(), "bf16");
  EXPECT_EQ(dynamic_cast<const Bf16Linear&>(*back).weights(), op.weights());
  const MatrixView X = MatrixView::row_major(x.data(), 50, 40);
  EXPECT_EQ(back->forward(X).values, op.forward(X).values);
  EXPECT_EQ(build("bf16", MatrixView::row_major(w.data(), 40, 24), bias.data())->forward(X).values, op.forward(X).values);
  EXPECT_EQ(op.bytes(), 40 * 24 * 2 + 24 * 4);
}

}  // namespace
}  // namespace lutmul
