// The encoder's glue kernels at every SIMD level this CPU runs against their scalar references
// (which sum in double), over odd sizes; GELU also against erf itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <sstream>
#include <vector>

#include "core/isa_sweep.h"
#include "core/kernel_registry.h"

namespace lutmul::testing {
namespace {

using kernels::RuntimeKernelTable;

const RuntimeKernelTable& level_kernels() { return detail::active_kernels().runtime; }
const RuntimeKernelTable& reference() { return detail::reference_kernels().runtime; }

std::vector<float> random_floats(size_t n, uint64_t seed, float scale = 1.f, float offset = 0.f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> out(n);
  for (float& v : out) v = offset + scale * normal(rng);
  return out;
}

// |a − b| ≤ tolerance·max(|b|, floor) for every element.
void expect_close(const std::vector<float>& actual, const std::vector<float>& expected, double tolerance, double floor,
                  const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i)
    ASSERT_LE(std::abs(actual[i] - expected[i]), tolerance * std::max<double>(std::abs(expected[i]), floor))
        << what << " at " << i << ": " << actual[i] << " vs " << expected[i];
}

using RuntimeKernels = LevelTest<Family::runtime, std::tuple<Isa, int64_t>>;

// Widths with whole vectors of both ISAs, a tail, fewer columns than one vector, 1.
const std::vector<int64_t> kWidths = {384, 48, 37, 7, 1};

TEST_P(RuntimeKernels, EmbeddingLayerNormMatchesTheReference) {
  const int64_t h = std::get<1>(GetParam()), vocab = 11, positions = 9, rows = 13;
  const std::vector<float> word = random_floats(vocab * h, 1), position = random_floats(positions * h, 2, 0.3f);
  const std::vector<float> type0 = random_floats(h, 3, 0.1f), gamma = random_floats(h, 4, 0.2f, 1.f), beta = random_floats(h, 5, 0.1f);
  std::vector<int32_t> ids(rows), pos(rows);
  for (int64_t t = 0; t < rows; ++t) ids[t] = static_cast<int32_t>((t * 7) % vocab), pos[t] = static_cast<int32_t>(t % positions);
  kernels::EmbeddingArgs a{ids.data(), pos.data(), word.data(), position.data(), type0.data(), gamma.data(), beta.data(), 1e-12f, h, nullptr};
  std::vector<float> expected(rows * h), actual(rows * h, -1.f);
  a.out = expected.data();
  reference().embedding(a, 0, rows);
  a.out = actual.data();
  level_kernels().embedding(a, 2, rows);  // a range: rows before it untouched
  level_kernels().embedding(a, 0, 2);
  // h = 1 normalises to exactly beta (its variance is 0); other widths: float sums.
  expect_close(actual, expected, 2e-5, 1.0, "embedding");
}

TEST_P(RuntimeKernels, ResidualLayerNormMatchesTheReference) {
  const int64_t h = std::get<1>(GetParam()), rows = 6, ldx = h + 3;
  const std::vector<float> x = random_floats(rows * ldx, 6, 2.f), bias = random_floats(h, 7, 0.5f);
  const std::vector<float> gamma = random_floats(h, 8, 0.2f, 1.f), beta = random_floats(h, 9, 0.1f);
  const std::vector<float> residual = random_floats(rows * h, 10, 3.f, 5.f);  // a large mean: cancellation
  for (const float* b : {static_cast<const float*>(nullptr), bias.data()}) {
    std::vector<float> expected = residual, actual = residual;
    kernels::ResidualNormArgs a{x.data(), ldx, b, gamma.data(), beta.data(), 1e-5f, h, expected.data()};
    reference().residual_norm(a, 0, rows);
    a.residual = actual.data();
    level_kernels().residual_norm(a, 0, rows);
    expect_close(actual, expected, 2e-5, 1.0, b ? "residual norm with bias" : "residual norm");
  }
}

TEST_P(RuntimeKernels, GeluMatchesTheReference) {
  const int64_t cols = std::get<1>(GetParam()), rows = 5, ld = cols + 1;
  const std::vector<float> input = random_floats(rows * ld, 11, 3.f), bias = random_floats(cols, 12);
  for (const float* b : {static_cast<const float*>(nullptr), bias.data()}) {
    std::vector<float> expected = input, actual = input;
    reference().gelu(expected.data(), ld, cols, b, 0, rows);
    level_kernels().gelu(actual.data(), ld, cols, b, 0, rows);
    // Relative to the value, but GELU's tail (x < −5) is below 1e-6 and compared absolutely.
    expect_close(actual, expected, 1e-6, 1e-6, "gelu");
  }
}

using RuntimeLevel = LevelTest<Family::runtime>;

TEST_P(RuntimeLevel, GeluIsExactErfGeluAcrossItsRange) {
  std::vector<float> x;
  for (float v = -14.f; v <= 14.f; v += 1.f / 64.f) x.push_back(v);
  for (float v : {1e-30f, -1e-30f, 1e-8f, -1e-8f, 0.f, 1e4f, -1e4f}) x.push_back(v);
  std::vector<float> y = x;
  level_kernels().gelu(y.data(), static_cast<int64_t>(y.size()), static_cast<int64_t>(y.size()), nullptr, 0, 1);
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double exact = 0.5 * x[i] * std::erfc(-static_cast<double>(x[i]) / std::sqrt(2.0));
    // Below 1e-30 (x < −11.3) only the absolute error matters: float ends at 1.2e-38.
    const double error = std::abs(y[i] - exact) / std::max(std::abs(exact), 1e-30);
    worst = std::max(worst, error);
    ASSERT_LE(error, 1e-6) << "gelu(" << x[i] << ") = " << y[i] << ", exact " << exact;
  }
  std::ostringstream text;
  text << worst;
  RecordProperty("worst_relative_error", text.str());
}

// Round to nearest even computed apart from the kernels' bit trick: the two bfloat16
// neighbours of x as doubles (exact), the nearer one, the even one on a tie; a NaN must stay a
// NaN of the same sign.
uint16_t bf16_nearest_even(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const uint32_t sign = bits & 0x80000000u, magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<uint16_t>(bits >> 16 | 0x40u);
  const auto value_of = [](uint32_t top) {  // |bfloat16| with these top bits, 2^128 past the largest
    if (top == 0x7f80u) return std::ldexp(1.0, 128);
    const uint32_t wide = top << 16;
    float f;
    std::memcpy(&f, &wide, sizeof f);
    return static_cast<double>(f);
  };
  const uint32_t low = magnitude >> 16;
  if (low == 0x7f80u) return static_cast<uint16_t>(bits >> 16);  // ±infinity
  const double a = std::abs(static_cast<double>(x)), below = value_of(low), above = value_of(low + 1);
  const bool up = a - below > above - a || (a - below == above - a && (low & 1u) != 0);
  return static_cast<uint16_t>(sign >> 16 | (up ? low + 1 : low));
}

TEST_P(RuntimeLevel, Bf16RoundingIsNearestEvenBitForBit) {
  std::vector<uint32_t> bits;
  std::mt19937_64 rng(31);
  for (int i = 0; i < 20000; ++i) bits.push_back(static_cast<uint32_t>(rng()));  // every exponent, NaNs too
  for (uint32_t top : {0x0000u, 0x0001u, 0x007fu, 0x0080u, 0x3f80u, 0x3f81u, 0x7f7fu, 0x7f80u, 0x7fc0u})
    for (uint32_t low : {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu})  // ties, both sides
      for (uint32_t sign : {0u, 0x80000000u}) bits.push_back(sign | top << 16 | low);
  std::vector<uint32_t> finite_bits = bits;  // the exponent's top bit cleared: no NaN or infinity
  for (uint32_t& b : finite_bits) b &= 0xbfffffffu;
  for (const std::vector<uint32_t>* set : {&bits, &finite_bits}) {
    for (size_t n : {bits.size(), size_t{37}, size_t{7}, size_t{1}}) {
      std::vector<float> x(n);
      std::memcpy(x.data(), set->data(), n * sizeof(float));
      std::vector<uint16_t> out(n + 1, 0xabcd);
      const bool finite = level_kernels().round_bf16(x.data(), static_cast<int64_t>(n), out.data());
      for (size_t i = 0; i < n; ++i)
        ASSERT_EQ(out[i], bf16_nearest_even(x[i])) << std::hex << "bits 0x" << (*set)[i] << ", n " << std::dec << n;
      EXPECT_EQ(out[n], 0xabcd) << "wrote past n = " << n;
      EXPECT_EQ(finite, std::all_of(x.begin(), x.end(), [](float v) { return std::isfinite(v); })) << "n " << n;
      // The same rounding widened back to floats: each result's bits are the bfloat16 ones
      // shifted up 16.
      std::vector<float> wide(n + 1, -3.f);
      EXPECT_EQ(level_kernels().round_bf16_floats(x.data(), static_cast<int64_t>(n), wide.data()), finite) << "n " << n;
      for (size_t i = 0; i < n; ++i) {
        uint32_t got;
        std::memcpy(&got, &wide[i], sizeof got);
        ASSERT_EQ(got, uint32_t{out[i]} << 16) << std::hex << "bits 0x" << (*set)[i] << ", n " << std::dec << n;
      }
      EXPECT_EQ(wide[n], -3.f) << "wrote past n = " << n;
    }
  }
}

TEST_P(RuntimeKernels, AttentionMatchesTheReference) {
  const int64_t d = std::get<1>(GetParam()) == 384 ? 32 : std::get<1>(GetParam());
  // Every remainder after the whole tiles of 8 query rows (scores) and of 4 (context).
  for (int64_t length : {1, 2, 3, 4, 5, 6, 7, 15, 16, 17, 21, 40}) {
    const int64_t ld_qkv = 3 * d + 5, ld_context = d + 2;
    const std::vector<float> qkv = random_floats(length * ld_qkv, 13 + length, 1.5f);
    std::vector<float> scratch(kernels::attention_scratch_floats(length, d));
    std::vector<float> expected(length * ld_context, 0.f), actual(length * ld_context, 0.f);
    kernels::AttentionArgs a{qkv.data(), qkv.data() + d, qkv.data() + 2 * d, ld_qkv, length, d,
                             1.f / std::sqrt(static_cast<float>(d)), expected.data(), ld_context, scratch.data()};
    reference().attention(a);
    a.context = actual.data();
    level_kernels().attention(a);
    // Contexts are convex combinations of rows of V (values of order 1). Scores of these inputs
    // reach ±10 and carry float rounding of about 1e-6 absolute, which softmax turns into a
    // relative error of each weight: 5e-6 of the values' scale.
    expect_close(actual, expected, 5e-6, 1.0, "attention, length " + std::to_string(length));
  }
}

TEST_P(RuntimeKernels, PoolingMatchesTheReference) {
  const int64_t h = std::get<1>(GetParam());
  for (int64_t count : {1, 3, 33})
    for (bool mean : {true, false})
      for (bool normalize : {true, false}) {
        const std::vector<float> rows = random_floats(count * h, 20 + count, 2.f, 0.5f);
        std::vector<float> expected(h), actual(h);
        reference().pool(rows.data(), count, h, mean, normalize, expected.data());
        level_kernels().pool(rows.data(), count, h, mean, normalize, actual.data());
        expect_close(actual, expected, 2e-6, normalize ? 1.0 / std::sqrt(static_cast<double>(h)) : 1.0, "pool");
      }
  std::vector<float> zero(h, 0.f), out(h, 1.f);
  level_kernels().pool(zero.data(), 1, h, true, true, out.data());
  EXPECT_EQ(out, zero) << "a zero vector stays zero when normalised";
}

INSTANTIATE_TEST_SUITE_P(Levels, RuntimeLevel, ::testing::ValuesIn(simd_levels()), LevelName());
INSTANTIATE_TEST_SUITE_P(Levels, RuntimeKernels, ::testing::ValuesIn(level_grid(Family::runtime, simd_levels(), kWidths)),
                         [](const ::testing::TestParamInfo<std::tuple<Isa, int64_t>>& param) {
                           return isa_name(std::get<0>(param.param)) + "_" + std::to_string(std::get<1>(param.param));
                         });

}  // namespace
}  // namespace lutmul::testing
