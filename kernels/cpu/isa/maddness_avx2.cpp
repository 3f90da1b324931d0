// Instantiates the encoder and the scan for avx2; this file alone is built with its flags.
#include "kernels/cpu/isa/simd_avx2.h"
#include "kernels/cpu/maddness/encode_impl.h"
#include "kernels/cpu/maddness/encode_wide_impl.h"
#include "kernels/cpu/maddness/scan_impl.h"
#include "kernels/cpu/maddness/scan_wide_impl.h"
#include "kernels/cpu/maddness/scan_wide_rows_avx2.h"

namespace lutmul::kernels {
namespace {

// 64 leaves: outputs in lanes where the caller gave the tables that way and M is wide enough.
void scan_wide_avx2(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m_begin, int64_t m_end) {
  if (wide_rows_apply(args, m_begin, m_end)) return scan_wide_rows(args, block_begin, block_end, m_begin, m_end);
  scan_wide_blocks<Avx2Ops>(args, block_begin, block_end, m_begin, m_end);
}

}  // namespace

const KernelTable* avx2_kernels() {
  static const KernelTable table{encode_blocks<Avx2Ops>, scan_blocks<Avx2Ops>, encode_wide_blocks<Avx2Ops>, scan_wide_avx2};
  return &table;
}

}  // namespace lutmul::kernels
