// The scalar reference kernels: plain loops that define what every SIMD path must produce,
// bit for bit. Kept deliberately simple; speed is the SIMD files' job.
#include <cmath>

#include "kernels/cpu/maddness/maddness_kernels.h"

namespace lutmul::kernels {
namespace {

bool encode_reference(const EncodeArgs& args, int64_t block_begin, int64_t block_end) {
  const int npairs = (args.ncodebooks + 1) / 2;
  bool saw_nan = false;
  for (int64_t block = block_begin; block < block_end; ++block) {
    uint8_t* out = args.packed + block * npairs * kBlockRows;
    for (int r = 0; r < kBlockRows; ++r) {
      const int64_t row = block * kBlockRows + r;
      for (int p = 0; p < npairs; ++p) {
        uint8_t byte = 0;
        for (int half = 0; half < 2 && row < args.rows; ++half) {
          const int c = 2 * p + half;
          if (c >= args.ncodebooks) break;
          int node = 0;
          for (int level = 0; level < kTreeDepth; ++level) {
            const int64_t dim = args.split_dims[c * kTreeDepth + level];
            const float x = args.a[row * args.row_stride + dim * args.col_stride];
            saw_nan |= std::isnan(x);
            const float threshold = args.thresholds[(c * kTreeDepth + level) * kThresholdStride + node];
            node = 2 * node + (x > threshold ? 1 : 0);
          }
          byte = static_cast<uint8_t>(byte | (node << (4 * half)));
        }
        out[packed_byte_offset(p, r)] = byte;
      }
    }
  }
  return saw_nan;
}

void scan_reference(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m_begin,
                    int64_t m_end) {
  for (int64_t block = block_begin; block < block_end; ++block) {
    const uint8_t* codes = args.packed + block * args.npairs * kBlockRows;
    for (int r = 0; r < kBlockRows; ++r) {
      const int64_t row = block * kBlockRows + r;
      if (row >= args.rows) break;
      for (int64_t m = m_begin; m < m_end; ++m) {
        const uint8_t* table = args.tables + m * args.npairs * kPairBytes;
        uint32_t sum = 0;
        for (int p = 0; p < args.npairs; ++p) {
          const uint8_t byte = codes[packed_byte_offset(p, r)];
          const uint32_t first = table[p * kPairBytes + (byte & 15)];
          const uint32_t second = table[p * kPairBytes + 16 + (byte >> 4)];
          sum += args.averaged ? (first + second + 1) >> 1 : first + second;
        }
        finish_output(args, sum, m, row * args.ldy + m);
      }
    }
  }
}

// 64-leaf trees: one code per byte, codebook c in byte column c.
bool encode_wide_reference(const EncodeArgs& args, int64_t block_begin, int64_t block_end) {
  const int C = args.ncodebooks;
  bool saw_nan = false;
  for (int64_t block = block_begin; block < block_end; ++block) {
    uint8_t* out = args.packed + block * C * kBlockRows;
    for (int r = 0; r < kBlockRows; ++r) {
      const int64_t row = block * kBlockRows + r;
      for (int c = 0; c < C; ++c) {
        int node = 0;
        for (int level = 0; level < kWideTreeDepth && row < args.rows; ++level) {
          const int64_t dim = args.split_dims[c * kWideTreeDepth + level];
          const float x = args.a[row * args.row_stride + dim * args.col_stride];
          saw_nan |= std::isnan(x);
          const float threshold = args.thresholds[(c * kWideTreeDepth + level) * kWideThresholdStride + node];
          node = 2 * node + (x > threshold ? 1 : 0);
        }
        out[packed_byte_offset(c, r)] = static_cast<uint8_t>(node);  // 0 on padding rows
      }
    }
  }
  return saw_nan;
}

void scan_wide_reference(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m_begin,
                         int64_t m_end) {
  const int C = args.ncodebooks;
  for (int64_t block = block_begin; block < block_end; ++block) {
    const uint8_t* codes = args.packed + block * C * kBlockRows;
    for (int r = 0; r < kBlockRows; ++r) {
      const int64_t row = block * kBlockRows + r;
      if (row >= args.rows) break;
      for (int64_t m = m_begin; m < m_end; ++m) {
        const uint8_t* table = args.tables + m * C * kWideLeaves;
        uint32_t sum = 0;
        for (int c = 0; c < C; ++c) sum += table[c * kWideLeaves + (codes[packed_byte_offset(c, r)] & 63)];
        finish_output(args, sum, m, row * args.ldy + m);
      }
    }
  }
}

}  // namespace

const KernelTable& scalar_kernels() {
  static const KernelTable table{encode_reference, scan_reference, encode_wide_reference, scan_wide_reference};
  return table;
}

}  // namespace lutmul::kernels
