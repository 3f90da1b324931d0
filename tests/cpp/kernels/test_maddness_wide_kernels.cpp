// The 64-leaf kernels (6-level trees, a 6-bit code per byte, 64-byte tables) of every level
// the host can run against the scalar reference, bit for bit: N not a multiple of 64, M not
// a multiple of 16, C odd and past one 256-codebook round, both layouts of A, padded leading
// dimensions and unaligned pointers.
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
using kernels::kWideLeaves;
using kernels::kWideThresholdStride;
using kernels::kWideTreeDepth;
using testing::Family;
using testing::LevelTest;

struct WideEncoder {
  int ncodebooks;
  int64_t dim;
  std::vector<int32_t> split_dims;  // C × 6
  std::vector<float> thresholds;    // C × 6 × 32
};

WideEncoder wide_encoder(int ncodebooks, int64_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick_dim(0, dim - 1);
  std::uniform_real_distribution<float> value(-1.f, 1.f);
  WideEncoder e{ncodebooks, dim, {}, {}};
  for (int i = 0; i < ncodebooks * kWideTreeDepth; ++i) e.split_dims.push_back(static_cast<int32_t>(pick_dim(rng)));
  for (int i = 0; i < ncodebooks * kWideTreeDepth * kWideThresholdStride; ++i)
    e.thresholds.push_back(i % 13 == 6 ? std::numeric_limits<float>::infinity() : value(rng));  // empty buckets: +inf
  return e;
}

// Values in [-1, 1], every seventh exactly a threshold (x > t is strict).
std::vector<float> wide_values(int64_t n, int64_t d, const WideEncoder& e) {
  std::mt19937_64 rng(static_cast<uint64_t>(n * 17 + d));
  std::uniform_real_distribution<float> value(-1.f, 1.f);
  std::uniform_int_distribution<size_t> pick(0, e.thresholds.size() - 1);
  std::vector<float> a(static_cast<size_t>(n * d));
  for (size_t i = 0; i < a.size(); ++i) {
    const float t = e.thresholds[pick(rng)];
    a[i] = (i % 7 == 0 && std::isfinite(t)) ? t : value(rng);
  }
  return a;
}

std::pair<std::vector<uint8_t>, bool> encode_wide_with(const kernels::KernelTable& table, const WideEncoder& e,
                                                       const std::vector<float>& a_row_major, int64_t n, bool col_major,
                                                       int64_t first_block = 0, int64_t last_block = -1) {
  const int64_t d = e.dim;
  const int64_t ld = col_major ? n + 3 : d + 5;
  std::vector<float> storage(static_cast<size_t>((col_major ? d : n) * ld + 1), 1e30f);
  float* a = storage.data() + 1;  // misaligned
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) (col_major ? a[j * ld + i] : a[i * ld + j]) = a_row_major[i * d + j];
  const int64_t nblocks = (n + kBlockRows - 1) / kBlockRows;
  std::vector<uint8_t> packed(static_cast<size_t>(nblocks * e.ncodebooks * kBlockRows), 0xAB);
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
  const bool nan = table.encode_wide(args, first_block, last_block < 0 ? nblocks : last_block);
  return {packed, nan};
}

std::vector<float> scan_wide_with(const kernels::KernelTable& table, const std::vector<uint8_t>& packed,
                                  const std::vector<uint8_t>& tables, const std::vector<float>& scales,
                                  const std::vector<float>& offsets, int64_t n, int64_t m, int c, bool gelu = false,
                                  bool accumulate = false, const uint8_t* row_tables = nullptr) {
  const int64_t ldy = m + 3, nblocks = (n + kBlockRows - 1) / kBlockRows;
  std::vector<float> storage(static_cast<size_t>(n * ldy + 1), -7.25f);
  for (size_t i = 0; i < storage.size(); ++i) storage[i] = static_cast<float>(i % 13) * 0.125f - 0.75f;
  kernels::ScanArgs args = testing::scan_args(packed, tables, scales, offsets, n, m, c);
  args.y = storage.data() + 1;  // misaligned output
  args.ldy = ldy;
  args.gelu = gelu;
  args.accumulate = accumulate;
  args.wide_row_tables = row_tables;
  const int64_t split = m / 2;  // two output ranges, as threads split them
  table.scan_wide(args, 0, nblocks, 0, split);
  table.scan_wide(args, 0, nblocks, split, m);
  return storage;
}

using GridParam = std::tuple<Isa, int64_t, int64_t, int>;  // isa, N, M, C

class WideKernelGrid : public LevelTest<Family::maddness, GridParam> {};

TEST_P(WideKernelGrid, EncodeMatchesScalarReference) {
  const auto [isa, n, m, c] = GetParam();
  (void)m;
  const int64_t d = 2 * c + 7;
  const WideEncoder e = wide_encoder(c, d, 500 + n + c);
  const std::vector<float> a = wide_values(n, d, e);
  for (bool col_major : {false, true}) {
    const auto expected = encode_wide_with(kernels::scalar_kernels(), e, a, n, col_major);
    const auto got = encode_wide_with(detail::kernels_for(isa).maddness, e, a, n, col_major);
    ASSERT_EQ(expected.second, got.second);
    ASSERT_EQ(expected.first, got.first) << (col_major ? "column-major" : "row-major");
  }
}

// Random 6-bit codes and 8-bit tables of a 64-leaf scan, each output its own scale.
struct WideScanProblem {
  std::vector<uint8_t> packed, tables;
  std::vector<float> scales, offsets;
  std::vector<uint8_t> row_tables;  // the tables with outputs last, as Maddness passes them
  WideScanProblem(int64_t n, int64_t m, int c, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> byte(0, 255), code(0, kWideLeaves - 1);
    packed.resize(static_cast<size_t>((n + kBlockRows - 1) / kBlockRows * c * kBlockRows));
    for (auto& b : packed) b = static_cast<uint8_t>(code(rng));
    tables.resize(static_cast<size_t>(m * c * kWideLeaves));
    for (auto& t : tables) t = static_cast<uint8_t>(byte(rng));
    for (int64_t j = 0; j < m; ++j) {
      scales.push_back(static_cast<float>(1 + j % 5) / (255.f * static_cast<float>(c)));
      offsets.push_back(-6.f + 9.f * static_cast<float>(j % 7) / 6.f);
    }
    row_tables.resize(kernels::wide_row_table_bytes(c, m));
    kernels::pack_wide_row_tables(tables.data(), c, m, row_tables.data());
  }
  // With the row tables: kernels that take them must give the same bits in every output mode.
  kernels::ScanArgs args(int64_t n, int64_t m, int c) const {
    kernels::ScanArgs a = testing::scan_args(packed, tables, scales, offsets, n, m, c);
    a.wide_row_tables = row_tables.data();
    return a;
  }
};

TEST_P(WideKernelGrid, ScanMatchesScalarReference) {
  const auto [isa, n, m, c] = GetParam();
  const WideScanProblem problem(n, m, c, 11 * n + 5 * m + c);
  const auto& [packed, tables, scales, offsets, row_tables] = problem;
  const std::vector<float> expected = scan_wide_with(kernels::scalar_kernels(), packed, tables, scales, offsets, n, m, c);
  const std::vector<float> got = scan_wide_with(detail::kernels_for(isa).maddness, packed, tables, scales, offsets, n, m, c);
  ASSERT_EQ(0, std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float)));
  // The epilogue: accumulation bit for bit, GELU to 1e-6 (the runtime's vector GELU).
  const auto& level_table = detail::kernels_for(isa).maddness;
  const auto accumulated = scan_wide_with(kernels::scalar_kernels(), packed, tables, scales, offsets, n, m, c, false, true);
  ASSERT_EQ(accumulated, scan_wide_with(level_table, packed, tables, scales, offsets, n, m, c, false, true));
  const auto activated = scan_wide_with(kernels::scalar_kernels(), packed, tables, scales, offsets, n, m, c, true, true);
  const auto activated_here = scan_wide_with(level_table, packed, tables, scales, offsets, n, m, c, true, true);
  for (size_t i = 0; i < activated.size(); ++i)
    ASSERT_NEAR(activated[i], activated_here[i], 1e-6 * std::max(1.f, std::fabs(activated[i]))) << "at " << i;
  // The same with the tables also given with outputs last (AVX2 then scans ranges of 9 or
  // more outputs from them).
  const uint8_t* rows = row_tables.data();
  ASSERT_EQ(expected, scan_wide_with(level_table, packed, tables, scales, offsets, n, m, c, false, false, rows));
  ASSERT_EQ(accumulated, scan_wide_with(level_table, packed, tables, scales, offsets, n, m, c, false, true, rows));
  const auto activated_rows = scan_wide_with(level_table, packed, tables, scales, offsets, n, m, c, true, true, rows);
  for (size_t i = 0; i < activated.size(); ++i)
    ASSERT_NEAR(activated[i], activated_rows[i], 1e-6 * std::max(1.f, std::fabs(activated[i]))) << "at " << i;
}

// bf16 outputs and the integer sums (narrow_outputs.h).
TEST_P(WideKernelGrid, NarrowOutputsMatchFloatOutputsAndReference) {
  const auto [isa, n, m, c] = GetParam();
  const WideScanProblem problem(n, m, c, 13 * n + 7 * m + c);
  testing::expect_narrow_outputs_match(detail::kernels_for(isa).maddness, &kernels::KernelTable::scan_wide,
                                       problem.args(n, m, c), "wide");
}

// Non-temporal Y (streamed_outputs.h); and more outputs than a block stages at once (plain stores).
TEST_P(WideKernelGrid, StreamedOutputsMatchPlainStores) {
  const auto [isa, n, m, c] = GetParam();
  const WideScanProblem problem(n, m, c, 17 * n + 3 * m + c);
  testing::expect_streamed_outputs_match(detail::kernels_for(isa).maddness, &kernels::KernelTable::scan_wide,
                                         problem.args(n, m, c), "wide");
  if (n != 1000 || m != 100) return;
  const WideScanProblem wider(130, 300, c, 19 + c);
  testing::expect_streamed_outputs_match(detail::kernels_for(isa).maddness, &kernels::KernelTable::scan_wide,
                                         wider.args(130, 300, c), "wide, 300 outputs");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, WideKernelGrid,
    ::testing::ValuesIn(testing::level_grid(Family::maddness, testing::simd_levels(),
                                            std::vector<int64_t>{1, 33, 64, 1000, 10016},
                                            std::vector<int64_t>{1, 3, 10, 21, 100}, std::vector<int>{1, 3, 16, 33})),
    [](const ::testing::TestParamInfo<GridParam>& param_info) {
      return isa_name(std::get<0>(param_info.param)) + "_N" + std::to_string(std::get<1>(param_info.param)) + "_M" +
             std::to_string(std::get<2>(param_info.param)) + "_C" + std::to_string(std::get<3>(param_info.param));
    });

class WideKernelEdges : public LevelTest<Family::maddness> {};

TEST_P(WideKernelEdges, NanIsReportedByEveryIsa) {
  const WideEncoder e = wide_encoder(3, 17, 4);
  for (int64_t n : {5, 64, 130}) {
    std::vector<float> a = wide_values(n, 17, e);
    a[static_cast<size_t>((n - 1) * 17 + e.split_dims[5])] = std::numeric_limits<float>::quiet_NaN();
    for (bool col_major : {false, true})
      EXPECT_TRUE(encode_wide_with(detail::kernels_for(level()).maddness, e, a, n, col_major).second)
          << isa_name(level()) << " n=" << n;
  }
}

TEST_P(WideKernelEdges, EveryOutputCountUpToThreeTilesMatchesTheReference) {
  // Every width of a last tile of outputs summed in registers (with_even_width), after zero,
  // one and two whole tiles of 16; 70 rows end in a partial half-block.
  for (int64_t m = 1; m <= 48; ++m) {
    const WideScanProblem problem(70, m, 5, 200 + m);
    const auto& [packed, tables, scales, offsets, row_tables] = problem;
    ASSERT_EQ(scan_wide_with(kernels::scalar_kernels(), packed, tables, scales, offsets, 70, m, 5),
              scan_wide_with(detail::kernels_for(level()).maddness, packed, tables, scales, offsets, 70, m, 5))
        << isa_name(level()) << " M=" << m;
  }
}

TEST_P(WideKernelEdges, ManyCodebooksNeverOverflowSixteenBits) {
  // All-255 tables: 255 and 256 codebooks, the largest sums kept in 16 bits (65,280; odd and
  // even codebook counts); 300, a second round of sums past 256 codebooks.
  for (const int c : {255, 256, 300}) {
    const int64_t n = 100, m = 5, nblocks = 2;
    std::vector<uint8_t> packed(static_cast<size_t>(nblocks * c * kBlockRows), 37);
    std::vector<uint8_t> tables(static_cast<size_t>(m * c * kWideLeaves), 255);
    const std::vector<float> zeros(static_cast<size_t>(m), 0.f), ones(static_cast<size_t>(m), 1.f);
    const std::vector<float> y = scan_wide_with(detail::kernels_for(level()).maddness, packed, tables, ones, zeros, n, m, c);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < m; ++j) ASSERT_EQ(255.f * static_cast<float>(c), y[1 + r * (m + 3) + j]) << isa_name(level()) << " C=" << c;
  }
}

// Output ranges on both sides of the row tables' threshold (9 outputs) and chunk (128), at odd
// starts, against the scalar reference: each range's outputs, and nothing outside it; the
// accumulating epilogue bit for bit, GELU (the runtime's vector GELU) to 1e-6.
TEST_P(WideKernelEdges, RowTableRangesMatchScalarReference) {
  const auto& table = detail::kernels_for(level()).maddness;
  for (const auto& [n, m, c] : std::vector<std::tuple<int64_t, int64_t, int>>{
           {1, 9, 1}, {100, 10, 16}, {33, 16, 3}, {1, 24, 1}, {65, 31, 3}, {130, 40, 16}, {64, 130, 33},
           {77, 300, 5}, {3, 257, 256}}) {
    const WideScanProblem problem(n, m, c, 23 * n + m + c);
    kernels::ScanArgs args = problem.args(n, m, c);
    const int64_t ldy = m + 2, nblocks = (n + kBlockRows - 1) / kBlockRows;
    for (const auto& [begin, end] : std::vector<std::pair<int64_t, int64_t>>{
             {0, m}, {1, m}, {5, m - 1}, {m - 24, m}, {m - 9, m}, {m - 8, m}}) {
      if (begin < 0 || begin >= end) continue;
      for (int epilogue = 0; epilogue < 3; ++epilogue) {  // plain, accumulate, GELU + accumulate
        std::vector<float> expected(static_cast<size_t>(n * ldy), 0.5f), got(expected.size(), 0.5f);
        args.ldy = ldy;
        args.accumulate = epilogue > 0;
        args.gelu = epilogue == 2;
        args.y = expected.data();
        kernels::scalar_kernels().scan_wide(args, 0, nblocks, begin, end);
        args.y = got.data();
        table.scan_wide(args, 0, nblocks, begin, end);
        for (size_t i = 0; i < expected.size(); ++i) {
          const float tolerance = epilogue == 2 ? 1e-6f * std::max(1.f, std::fabs(expected[i])) : 0.f;
          ASSERT_NEAR(expected[i], got[i], tolerance) << isa_name(level()) << " n=" << n << " m=" << m << " c=" << c
                                                      << " outputs [" << begin << ", " << end << ") epilogue "
                                                      << epilogue << " at " << i;
        }
      }
    }
  }
}

TEST_P(WideKernelEdges, BlockRangesEncodeIndependently) {
  const WideEncoder e = wide_encoder(5, 21, 8);
  const int64_t n = 300;
  const std::vector<float> a = wide_values(n, 21, e);
  const auto& table = detail::kernels_for(level()).maddness;
  for (bool col_major : {false, true}) {
    const auto whole = encode_wide_with(table, e, a, n, col_major);
    auto first = encode_wide_with(table, e, a, n, col_major, 0, 2);
    const auto second = encode_wide_with(table, e, a, n, col_major, 2, 5);
    const size_t split = 2 * 5 * kBlockRows;
    std::copy(second.first.begin() + split, second.first.end(), first.first.begin() + split);
    EXPECT_EQ(whole.first, first.first) << isa_name(level());
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, WideKernelEdges, ::testing::ValuesIn(testing::every_level()), testing::LevelName());

}  // namespace
}  // namespace lutmul
