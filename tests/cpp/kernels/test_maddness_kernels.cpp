// Every SIMD kernel the host can run against the scalar reference, bit for bit, over a
// grid of shapes: odd N, M = 1, C not a power of two, D not divisible by C, both layouts,
// padded leading dimensions and unaligned pointers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <tuple>

#include "../core/isa_sweep.h"
#include "narrow_outputs.h"
#include "streamed_outputs.h"
#include "core/kernel_registry.h"
#include "kernels/cpu/maddness/maddness_kernels.h"
#include "lutmul/core/isa.h"

namespace lutmul {
namespace {

using kernels::kBlockRows;
using testing::Family;
using testing::LevelTest;

struct RandomEncoder {
  int ncodebooks;
  int64_t dim;
  std::vector<int32_t> split_dims;
  std::vector<float> thresholds;
};

RandomEncoder random_encoder(int ncodebooks, int64_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick_dim(0, dim - 1);
  std::uniform_real_distribution<float> value(-1.f, 1.f);
  RandomEncoder e{ncodebooks, dim, {}, {}};
  for (int i = 0; i < ncodebooks * kernels::kTreeDepth; ++i) e.split_dims.push_back(static_cast<int32_t>(pick_dim(rng)));
  for (int i = 0; i < ncodebooks * kernels::kTreeDepth * kernels::kThresholdStride; ++i) {
    // Some +inf thresholds, as trees learn for empty buckets.
    e.thresholds.push_back(i % 11 == 5 ? std::numeric_limits<float>::infinity() : value(rng));
  }
  return e;
}

std::vector<float> testing_values(int64_t n, int64_t d, const RandomEncoder& e);

// Encodes with one kernel table; A is laid out per `col_major`, with padding and an
// unaligned start. Returns the packed codes and whether NaN was seen.
std::pair<std::vector<uint8_t>, bool> encode_with(const kernels::KernelTable& table, const RandomEncoder& e,
                                                  const std::vector<float>& a_row_major, int64_t n, bool col_major,
                                                  int64_t first_block = 0, int64_t last_block = -1,
                                                  bool rows_in_cache = false) {
  const int64_t d = e.dim;
  const int64_t ld = col_major ? n + 3 : d + 5;
  std::vector<float> storage(static_cast<size_t>((col_major ? d : n) * ld + 1), 1e30f);
  float* a = storage.data() + 1;  // deliberately misaligned
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) (col_major ? a[j * ld + i] : a[i * ld + j]) = a_row_major[i * d + j];
  const int npairs = (e.ncodebooks + 1) / 2;
  const int64_t nblocks = (n + kBlockRows - 1) / kBlockRows;
  std::vector<uint8_t> packed(static_cast<size_t>(nblocks * npairs * kBlockRows), 0xAB);
  std::vector<float> scratch(kernels::encode_scratch_floats(e.ncodebooks));
  kernels::EncodeArgs args;
  args.a = a;
  args.rows = n;
  args.row_stride = col_major ? 1 : ld;
  args.col_stride = col_major ? ld : 1;
  args.ncodebooks = e.ncodebooks;
  args.split_dims = e.split_dims.data();
  args.thresholds = e.thresholds.data();
  args.packed = packed.data();
  args.tail_scratch = scratch.data();
  args.rows_in_cache = rows_in_cache;
  const bool nan = table.encode(args, first_block, last_block < 0 ? nblocks : last_block);
  return {packed, nan};
}

using GridParam = std::tuple<Isa, int64_t, int64_t, int>;  // isa, N, M, C

// Every SIMD level against the scalar reference; a level the CPU lacks skips.
class KernelGrid : public LevelTest<Family::maddness, GridParam> {};

TEST_P(KernelGrid, EncodeMatchesScalarReference) {
  const auto [isa, n, m, c] = GetParam();
  (void)m;
  const int64_t d = 3 * c + 5;  // never divisible by C (for C > 5)
  const RandomEncoder e = random_encoder(c, d, 1000 + n + c);
  std::vector<float> a = testing_values(n, d, e);
  for (bool col_major : {false, true}) {
    const auto expected = encode_with(kernels::scalar_kernels(), e, a, n, col_major);
    const auto got = encode_with(detail::kernels_for(isa).maddness, e, a, n, col_major);
    ASSERT_EQ(expected.second, got.second);
    ASSERT_EQ(expected.first, got.first) << "layout " << (col_major ? "column-major" : "row-major");
  }
}

// Random codes and 8-bit tables of a 16-leaf scan (N rows, M outputs, C codebooks), with
// scales and offsets across GELU's range (from its tail, -8, to where it is the identity),
// each output its own.
struct ScanProblem {
  int64_t n, m;
  int c;
  std::vector<uint8_t> packed, tables;
  std::vector<float> scales, offsets;

  ScanProblem(int64_t rows, int64_t outputs, int codebooks, uint64_t seed) : n(rows), m(outputs), c(codebooks) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> byte(0, 255);
    const int npairs = (c + 1) / 2;
    packed.resize(static_cast<size_t>(nblocks() * npairs * kBlockRows));
    for (auto& b : packed) b = static_cast<uint8_t>(byte(rng));
    tables.resize(static_cast<size_t>(m * npairs * kernels::kPairBytes));
    for (auto& t : tables) t = static_cast<uint8_t>(byte(rng));
    for (int64_t j = 0; j < m; ++j) {
      scales.push_back(static_cast<float>(1 + j % 5) * 4.f / (255.f * static_cast<float>(2 * npairs)));
      offsets.push_back(-8.f + 12.f * static_cast<float>(j % 7) / 6.f);
    }
  }
  int64_t nblocks() const { return (n + kBlockRows - 1) / kBlockRows; }
  kernels::ScanArgs args() const { return testing::scan_args(packed, tables, scales, offsets, n, m, c); }
};

TEST_P(KernelGrid, ScanMatchesScalarReference) {
  const auto [isa, n, m, c] = GetParam();
  const ScanProblem problem(n, m, c, 7 * n + 13 * m + c);
  const int64_t nblocks = problem.nblocks();
  for (bool averaged : {false, true}) {
    const int64_t ldy = m + 3;
    auto run = [&](const kernels::KernelTable& table) {
      std::vector<float> storage(static_cast<size_t>(n * ldy + 1), -7.25f);
      kernels::ScanArgs args = problem.args();
      args.averaged = averaged;
      args.y = storage.data() + 1;  // misaligned output
      args.ldy = ldy;
      // Two output ranges, as threads split them.
      const int64_t split = m / 2;
      table.scan(args, 0, nblocks, 0, split);
      table.scan(args, 0, nblocks, split, m);
      return storage;
    };
    const std::vector<float> expected = run(kernels::scalar_kernels());
    const std::vector<float> got = run(detail::kernels_for(isa).maddness);
    ASSERT_EQ(0, std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float)))
        << (averaged ? "averaged" : "exact") << " accumulation differs";
  }
}

// The epilogue: accumulating into Y is bit for bit the reference's; GELU goes through the
// runtime's vector GELU in SIMD paths, so it is compared to 1e-6 (relative, absolute in the
// tail), as the runtime's own GELU kernel is.
TEST_P(KernelGrid, ScanEpiloguesMatchScalarReference) {
  const auto [isa, n, m, c] = GetParam();
  const ScanProblem problem(n, m, c, 3 * n + 17 * m + c);
  const int64_t nblocks = problem.nblocks(), ldy = m + 3;
  std::mt19937_64 rng(n + m + c);
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<float> residual(static_cast<size_t>(n * ldy + 1));
  for (auto& v : residual) v = static_cast<float>(byte(rng)) * 0.01f - 1.f;
  for (const auto& [gelu, accumulate] : {std::pair{true, false}, std::pair{false, true}, std::pair{true, true}}) {
    auto run = [&, gelu = gelu, accumulate = accumulate](const kernels::KernelTable& table) {
      std::vector<float> storage = residual;
      kernels::ScanArgs args = problem.args();
      args.gelu = gelu;
      args.accumulate = accumulate;
      args.y = storage.data() + 1;
      args.ldy = ldy;
      table.scan(args, 0, nblocks, 0, m / 2);
      table.scan(args, 0, nblocks, m / 2, m);
      return storage;
    };
    const std::vector<float> expected = run(kernels::scalar_kernels());
    const std::vector<float> got = run(detail::kernels_for(isa).maddness);
    if (!gelu) {
      ASSERT_EQ(0, std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float))) << "accumulate";
      continue;
    }
    for (size_t i = 0; i < expected.size(); ++i)
      ASSERT_NEAR(expected[i], got[i], 1e-6 * std::max(1.f, std::fabs(expected[i])))
          << "at " << i << (accumulate ? ", GELU and accumulate" : ", GELU");
  }
}

// bf16 outputs and the integer sums (narrow_outputs.h), in both accumulation modes.
TEST_P(KernelGrid, NarrowOutputsMatchFloatOutputsAndReference) {
  const auto [isa, n, m, c] = GetParam();
  const ScanProblem problem(n, m, c, 5 * n + 11 * m + c);
  kernels::ScanArgs args = problem.args();
  for (const bool averaged : {false, true}) {
    args.averaged = averaged;
    testing::expect_narrow_outputs_match(detail::kernels_for(isa).maddness, &kernels::KernelTable::scan, args,
                                         averaged ? "averaged" : "exact");
  }
}

// Non-temporal Y (streamed_outputs.h), in both accumulation modes.
TEST_P(KernelGrid, StreamedOutputsMatchPlainStores) {
  const auto [isa, n, m, c] = GetParam();
  const ScanProblem problem(n, m, c, 9 * n + 5 * m + c);
  kernels::ScanArgs args = problem.args();
  for (const bool averaged : {false, true}) {
    args.averaged = averaged;
    testing::expect_streamed_outputs_match(detail::kernels_for(isa).maddness, &kernels::KernelTable::scan, args,
                                           averaged ? "averaged" : "exact");
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, KernelGrid,
    ::testing::ValuesIn(testing::level_grid(Family::maddness, testing::simd_levels(),
                                            std::vector<int64_t>{1, 31, 32, 33, 1000, 10016},
                                            std::vector<int64_t>{1, 3, 10, 21, 100}, std::vector<int>{1, 2, 3, 8, 16, 24, 32, 64})),
    [](const ::testing::TestParamInfo<GridParam>& param_info) {
      return isa_name(std::get<0>(param_info.param)) + "_N" + std::to_string(std::get<1>(param_info.param)) + "_M" +
             std::to_string(std::get<2>(param_info.param)) + "_C" + std::to_string(std::get<3>(param_info.param));
    });

// Values in [-1, 1], a share of them exactly equal to a threshold (x > t must be strict).
std::vector<float> testing_values(int64_t n, int64_t d, const RandomEncoder& e) {
  std::mt19937_64 rng(static_cast<uint64_t>(n * 31 + d));
  std::uniform_real_distribution<float> value(-1.f, 1.f);
  std::uniform_int_distribution<size_t> pick(0, e.thresholds.size() - 1);
  std::vector<float> a(static_cast<size_t>(n * d));
  for (size_t i = 0; i < a.size(); ++i) {
    const float t = e.thresholds[pick(rng)];
    a[i] = (i % 7 == 0 && std::isfinite(t)) ? t : value(rng);
  }
  return a;
}

// Properties every level's kernels have, the scalar ones included.
class KernelEdges : public LevelTest<Family::maddness> {};

TEST_P(KernelEdges, NanIsReportedByEveryIsa) {
  const RandomEncoder e = random_encoder(4, 20, 5);
  const Isa isa = level();
  for (int64_t n : {5, 64, 130}) {
    std::vector<float> a = testing_values(n, 20, e);
    a[static_cast<size_t>((n - 1) * 20 + e.split_dims[3])] = std::numeric_limits<float>::quiet_NaN();
    for (bool col_major : {false, true}) {
      const auto got = encode_with(detail::kernels_for(isa).maddness, e, a, n, col_major);
      EXPECT_TRUE(got.second) << isa_name(isa) << " n=" << n;
    }
  }
}

// More outputs than a block stages at once (plain stores then), with 16-bit sums and with the
// 32-bit ones of more than 128 pairs.
TEST_P(KernelEdges, StreamedOutputsWiderThanAStagedBlock) {
  for (const int c : {16, 520}) {
    const ScanProblem problem(130, 300, c, 41 + c);
    testing::expect_streamed_outputs_match(detail::kernels_for(level()).maddness, &kernels::KernelTable::scan,
                                           problem.args(), "C=" + std::to_string(c));
  }
}

TEST_P(KernelEdges, LargeCodebookCountsNeverOverflowSixteenBits) {
  // All-255 tables. 128 and 256 pairs: the largest sums kept in 16 bits (65,280 for exact
  // and for averaged accumulation respectively); 260 pairs: rounds of 128 (exact) and 256
  // (averaged) pairs added in 32 bits.
  for (const int c : {256, 512, 520}) {
    const int npairs = c / 2;
    const int64_t n = 100, m = 5;
    const int64_t nblocks = 2;
    std::vector<uint8_t> packed(static_cast<size_t>(nblocks * npairs * kBlockRows), 0x5A);
    std::vector<uint8_t> tables(static_cast<size_t>(m * npairs * kernels::kPairBytes), 255);
    std::vector<float> offsets(static_cast<size_t>(m), 0.f), ones(static_cast<size_t>(m), 1.f);
    const Isa isa = level();
    for (bool averaged : {false, true}) {
      std::vector<float> y(static_cast<size_t>(n * m));
      kernels::ScanArgs args;
      args.packed = packed.data();
      args.rows = n;
      args.npairs = npairs;
      args.tables = tables.data();
      args.outputs = m;
      args.scales = ones.data();
      args.offsets = offsets.data();
      args.averaged = averaged;
      args.y = y.data();
      args.ldy = m;
      detail::kernels_for(isa).maddness.scan(args, 0, nblocks, 0, m);
      const float expected = 255.f * static_cast<float>(averaged ? npairs : c);
      for (float v : y) ASSERT_EQ(expected, v) << isa_name(isa) << (averaged ? " averaged" : " exact") << " C=" << c;
    }
  }
}

TEST_P(KernelEdges, EveryOutputCountUpToThreeTilesMatchesTheReference) {
  // Every width of a last tile of outputs summed in registers (with_even_width), after zero,
  // one and two whole tiles of 16.
  for (int64_t m = 1; m <= 48; ++m) {
    const ScanProblem problem(70, m, 5, 100 + m);
    auto run = [&](const kernels::KernelTable& table) {
      std::vector<float> y(static_cast<size_t>(problem.n * m), -7.25f);
      kernels::ScanArgs args = problem.args();
      args.y = y.data();
      args.ldy = m;
      table.scan(args, 0, problem.nblocks(), 0, m);
      return y;
    };
    ASSERT_EQ(run(kernels::scalar_kernels()), run(detail::kernels_for(level()).maddness)) << isa_name(level()) << " M=" << m;
  }
}

TEST_P(KernelEdges, BlockRangesEncodeIndependently) {
  const RandomEncoder e = random_encoder(6, 23, 9);
  const int64_t n = 300;
  const std::vector<float> a = testing_values(n, 23, e);
  const Isa isa = level();
  const auto whole = encode_with(detail::kernels_for(isa).maddness, e, a, n, false);
  auto first = encode_with(detail::kernels_for(isa).maddness, e, a, n, false, 0, 2);
  const auto second = encode_with(detail::kernels_for(isa).maddness, e, a, n, false, 2, 5);
  const size_t split = 2 * 3 * kBlockRows;
  std::copy(second.first.begin() + split, second.first.end(), first.first.begin() + split);
  EXPECT_EQ(whole.first, first.first) << isa_name(isa);
}

// The row-major encoder's plan of touched lines: rows past its bitmap (64 Ki floats) take
// the sorted path, lines shared by several splits are fetched once, and rows marked as in
// cache (a producer's block, no prefetch) give the same codes.
TEST_P(KernelEdges, LongRowsAndRowsInCacheEncodeLikeTheReference) {
  const Isa isa = level();
  for (const int64_t d : {int64_t{300}, int64_t{70001}}) {
    RandomEncoder e = random_encoder(11, d, 17);
    for (size_t i = 0; i < e.split_dims.size(); i += 3) e.split_dims[i] = static_cast<int32_t>(d - 1 - i % 2);
    for (const int64_t n : {int64_t{3}, int64_t{70}}) {
      if (d > 1000 && n > 3) continue;  // 3 long rows are enough (a partial block)
      const std::vector<float> a = testing_values(n, d, e);
      const auto expected = encode_with(kernels::scalar_kernels(), e, a, n, false);
      for (const bool in_cache : {false, true}) {
        const auto got = encode_with(detail::kernels_for(isa).maddness, e, a, n, false, 0, -1, in_cache);
        ASSERT_EQ(expected.first, got.first) << isa_name(isa) << " D=" << d << " N=" << n << (in_cache ? " in cache" : "");
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, KernelEdges, ::testing::ValuesIn(testing::every_level()), testing::LevelName());

}  // namespace
}  // namespace lutmul
