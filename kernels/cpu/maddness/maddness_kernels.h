// Internal interface between the library (src/, built without ISA flags) and the per-ISA
// kernels. Arguments are checked by the caller; kernels never throw.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/runtime/runtime_kernels.h"
#include "lutmul/core/isa.h"

namespace lutmul::kernels {

constexpr int kBlockRows = 64;   // rows per packed code block
constexpr int kTreeDepth = 4;
constexpr int kThresholdStride = 8;  // floats per (codebook, level); level t uses 2^t
constexpr int kPairBytes = 32;       // table bytes per (output, codebook pair)

// Wide trees: 64 leaves (6 levels), one 6-bit code per byte, 64-byte tables per
// (output, codebook). Codes: nblocks × C × 64 bytes, codebook c's byte of row r at
// packed_byte_offset(c, r); tables: M × C × 64.
constexpr int kWideTreeDepth = 6;
constexpr int kWideThresholdStride = 32;
constexpr int kWideLeaves = 64;

struct EncodeArgs {
  const float* a = nullptr;   // element (i, j) at a[i * row_stride + j * col_stride]
  int64_t rows = 0;
  int64_t row_stride = 0;
  int64_t col_stride = 0;
  int ncodebooks = 0;
  const int32_t* split_dims = nullptr;  // C × depth
  const float* thresholds = nullptr;    // C × depth × 2^(depth-1)
  uint8_t* packed = nullptr;            // nblocks × npairs × 64 (wide: nblocks × C × 64)
  // Caller-owned scratch of encode_scratch_floats(C) floats (a partial last block, the
  // row-major encoder's plan). SIMD files take no memory of their own: an allocation there
  // could link AVX-512 code into baseline callers.
  float* tail_scratch = nullptr;
  // The rows were just written (a producer's block): no software prefetch of rows ahead.
  bool rows_in_cache = false;
};

// What the scan stores for each (row, output), from the integer sum S of the mode.
enum class ScanOutput : uint8_t {
  f32,   // y: v = float(S)·scale + offset through the epilogue, as float
  bf16,  // y16: the bfloat16 bits of that float v, rounded to nearest even; accumulating
         // adds v to the old value widened to float, then rounds
  sums,  // y16: S itself (S < 2^16); scales, offsets, gelu and accumulate are not read
};

struct ScanArgs {
  const uint8_t* packed = nullptr;  // nblocks × npairs × 64 (EncodedRows layout)
  int64_t rows = 0;
  int npairs = 0;
  int ncodebooks = 0;               // read by the wide scan (codes and tables per codebook)
  const uint8_t* tables = nullptr;  // M × npairs × 32 (wide: M × C × 64)
  int64_t outputs = 0;              // M
  // v = float(S) * scales[m] + offsets[m], S the integer sum of the mode; then the epilogue:
  // v = gelu(v) when `gelu`, and y[r][m] = v, or y[r][m] += v when `accumulate`.
  const float* scales = nullptr;    // M
  const float* offsets = nullptr;   // M
  bool averaged = false;
  bool gelu = false;
  bool accumulate = false;
  ScanOutput output = ScanOutput::f32;
  float* y = nullptr;       // ScanOutput::f32
  uint16_t* y16 = nullptr;  // ScanOutput::bf16 and ::sums
  int64_t ldy = 0;          // of y or y16, in elements
  // Float Y without accumulation written with non-temporal stores, through a block staged in
  // L1: for a caller that knows Y is out of the caches (a plain store first reads the line).
  // The same values either way.
  bool stream_y = false;
  // 64-leaf tables also laid out with outputs last (pack_wide_row_tables), or null: where a
  // kernel looks a row's code up in a table row of all its outputs (AVX2, at enough outputs).
  const uint8_t* wide_row_tables = nullptr;
};

// Encodes row blocks [block_begin, block_end). Returns true if any value read was NaN.
using EncodeFn = bool (*)(const EncodeArgs&, int64_t block_begin, int64_t block_end);
// Writes rows of blocks [block_begin, block_end), outputs [m_begin, m_end).
using ScanFn = void (*)(const ScanArgs&, int64_t block_begin, int64_t block_end,
                        int64_t m_begin, int64_t m_end);

struct KernelTable {
  EncodeFn encode;
  ScanFn scan;
  EncodeFn encode_wide;  // 64-leaf trees
  ScanFn scan_wide;      // exact sums only
};

// Kernels of one ISA (compiled into the library only where the compiler can target it).
const KernelTable& scalar_kernels();
const KernelTable* avx2_kernels();    // nullptr if not built
const KernelTable* avx512_kernels();  // nullptr if not built
const KernelTable* avx512vbmi_kernels();  // nullptr if not built
const KernelTable* neon_kernels();    // nullptr if not built

// x·Φ(x) in double, rounded once: the reference GELU (the runtime's scalar kernel computes the
// same). SIMD epilogues use the runtime's vector GELU, a few ulps from this.
static inline float exact_gelu(float x) {
  const double v = x;
  return static_cast<float>(v * 0.5 * std::erfc(-v / std::sqrt(2.0)));
}

static inline float bf16_bits_to_float(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float v;
  std::memcpy(&v, &wide, sizeof v);
  return v;
}

static inline uint16_t float_to_bf16_bits(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return round_to_bf16_bits(bits);
}

// The epilogue of output m of the row stored at element `at` of Y, as every scan applies it:
// two roundings (multiply, then add, never fused), then GELU, then the accumulation, then
// the bfloat16 rounding where asked.
static inline void finish_output(const ScanArgs& args, uint32_t sum, int64_t m, int64_t at) {
  if (args.output == ScanOutput::sums) {
    args.y16[at] = static_cast<uint16_t>(sum);
    return;
  }
  const float scaled = static_cast<float>(sum) * args.scales[m];
  float v = scaled + args.offsets[m];
  if (args.gelu) v = exact_gelu(v);
  if (args.output == ScanOutput::bf16) {
    args.y16[at] = float_to_bf16_bits(args.accumulate ? bf16_bits_to_float(args.y16[at]) + v : v);
    return;
  }
  args.y[at] = args.accumulate ? args.y[at] + v : v;
}

// Scratch an encode call needs (EncodeArgs::tail_scratch), in floats.
static inline size_t encode_scratch_floats(int ncodebooks) {
  const size_t column_tile = static_cast<size_t>(ncodebooks) * kTreeDepth * (kBlockRows + 1);
  const size_t row_plan = static_cast<size_t>((ncodebooks + 15) / 16) * 16 * (15 + 2 * kTreeDepth);
  const size_t short_rows_tile = 128 * kBlockRows;  // encode_impl.h: kShortRow × 64
  const size_t wide_tile = static_cast<size_t>(ncodebooks) * kWideTreeDepth * (kBlockRows + 1);
  const size_t narrow = column_tile > row_plan ? column_tile : row_plan;
  const size_t most = narrow > wide_tile ? narrow : wide_tile;
  return most > short_rows_tile ? most : short_rows_tile;
}

// 64-leaf tables with outputs last: byte (c, leaf, m) at (c · 64 + leaf) · stride + m, the
// stride M rounded up to 16, and 16 bytes after the last row, so a kernel may load 16 outputs
// from any m < M. From the M × C × 64 tables the scans read.
static inline int64_t wide_row_table_stride(int64_t m) { return (m + 15) / 16 * 16; }
static inline size_t wide_row_table_bytes(int ncodebooks, int64_t m) {
  return static_cast<size_t>(ncodebooks) * kWideLeaves * static_cast<size_t>(wide_row_table_stride(m)) + 16;
}
static inline void pack_wide_row_tables(const uint8_t* tables, int ncodebooks, int64_t m, uint8_t* out) {
  const int64_t stride = wide_row_table_stride(m);
  std::memset(out, 0, wide_row_table_bytes(ncodebooks, m));
  for (int64_t j = 0; j < m; ++j)
    for (int64_t i = 0; i < int64_t{ncodebooks} * kWideLeaves; ++i) out[i * stride + j] = tables[j * ncodebooks * kWideLeaves + i];
}

// Position of (row-in-block r, pair p) in the packed layout: byte offset within a block.
static inline size_t packed_byte_offset(int pair, int row_in_block) {
  const int word = row_in_block & 31;
  return static_cast<size_t>(pair) * kBlockRows + static_cast<size_t>(2 * word + (row_in_block >> 5));
}

}  // namespace lutmul::kernels
