// Scan test helpers: a scan's arguments, and its narrow outputs (ScanOutput::bf16, ::sums)
// checked for one kernel level, for 16-leaf and 64-leaf scans alike:
//   - sums equal the scalar reference's, and float(S)·scale + offset is the level's float Y;
//   - bf16 is the level's float Y (epilogue included) rounded to nearest even, bit for bit,
//     and without GELU (whose vector form differs by ulps) the scalar reference's bits too.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/maddness/maddness_kernels.h"

namespace lutmul::testing {

// A scan's arguments for codes and tables of N rows, M outputs and C codebooks (either tree
// width): everything but the output and the epilogue.
inline kernels::ScanArgs scan_args(const std::vector<uint8_t>& packed, const std::vector<uint8_t>& tables,
                                   const std::vector<float>& scales, const std::vector<float>& offsets, int64_t n,
                                   int64_t m, int c) {
  kernels::ScanArgs a;
  a.packed = packed.data();
  a.rows = n;
  a.npairs = (c + 1) / 2;
  a.ncodebooks = c;
  a.tables = tables.data();
  a.outputs = m;
  a.scales = scales.data();
  a.offsets = offsets.data();
  return a;
}

// Runs `scan` of `table` over all blocks, outputs split in two ranges as threads split them.
// `storage` holds Y with one element of padding in front (a misaligned start), ldy = M + 3.
template <class T>
void scan_into(const kernels::KernelTable& table, kernels::ScanFn kernels::KernelTable::*scan, kernels::ScanArgs args,
               kernels::ScanOutput output, std::vector<T>& storage) {
  const int64_t nblocks = (args.rows + kernels::kBlockRows - 1) / kernels::kBlockRows;
  args.output = output;
  args.ldy = args.outputs + 3;
  if constexpr (sizeof(T) == 2) {
    args.y16 = reinterpret_cast<uint16_t*>(storage.data()) + 1;
  } else {
    args.y = storage.data() + 1;
  }
  const int64_t split = args.outputs / 2;
  (table.*scan)(args, 0, nblocks, 0, split);
  (table.*scan)(args, 0, nblocks, split, args.outputs);
}

// `base` describes codes, tables, scales and offsets (output fields unset).
inline void expect_narrow_outputs_match(const kernels::KernelTable& level, kernels::ScanFn kernels::KernelTable::*scan,
                                        const kernels::ScanArgs& base, const std::string& what) {
  const int64_t n = base.rows, m = base.outputs, ldy = m + 3;
  const size_t size = static_cast<size_t>(n * ldy + 1);

  std::vector<uint16_t> sums(size, 0xBEEF), reference_sums(size, 0xBEEF);
  scan_into(level, scan, base, kernels::ScanOutput::sums, sums);
  scan_into(kernels::scalar_kernels(), scan, base, kernels::ScanOutput::sums, reference_sums);
  ASSERT_EQ(reference_sums, sums) << what << ": integer sums";
  std::vector<float> y(size, -7.25f);
  scan_into(level, scan, base, kernels::ScanOutput::f32, y);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < m; ++j) {
      const size_t at = static_cast<size_t>(1 + r * ldy + j);
      const float scaled = static_cast<float>(sums[at]) * base.scales[j];
      ASSERT_EQ(y[at], scaled + base.offsets[j]) << what << ": sums against Y at row " << r << ", output " << j;
    }

  // Old values of Y: finite bfloat16 numbers, which accumulation reads.
  std::mt19937_64 rng(static_cast<uint64_t>(n * 131 + m));
  std::uniform_real_distribution<float> value(-3.f, 3.f);
  std::vector<uint16_t> old(size);
  for (auto& v : old) v = kernels::float_to_bf16_bits(value(rng));
  for (const bool gelu : {false, true})
    for (const bool accumulate : {false, true}) {
      kernels::ScanArgs args = base;
      args.gelu = gelu;
      args.accumulate = accumulate;
      std::vector<uint16_t> got = old, reference = old;
      scan_into(level, scan, args, kernels::ScanOutput::bf16, got);
      std::vector<float> wide(size);
      for (size_t i = 0; i < size; ++i) wide[i] = kernels::bf16_bits_to_float(old[i]);
      scan_into(level, scan, args, kernels::ScanOutput::f32, wide);
      std::vector<uint16_t> rounded(size);
      for (size_t i = 0; i < size; ++i) rounded[i] = kernels::float_to_bf16_bits(wide[i]);
      const std::string epilogue = std::string(gelu ? " GELU" : "") + (accumulate ? " accumulate" : "");
      ASSERT_EQ(rounded, got) << what << ": bf16 against the rounded float Y," << epilogue;
      if (gelu) continue;
      scan_into(kernels::scalar_kernels(), scan, args, kernels::ScanOutput::bf16, reference);
      ASSERT_EQ(reference, got) << what << ": bf16 against the reference," << epilogue;
    }
}

}  // namespace lutmul::testing
