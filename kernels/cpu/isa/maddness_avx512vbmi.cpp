// AVX-512 with VBMI and VNNI: the AVX-512 encoder, the vpermb + vpdpbusd scan for exact
// sums, the vpshufb scan for averaged sums (averaging would only slow this one down), and
// the vpermt2b + vpmaddubsw scan of 64-leaf trees.
#include "kernels/cpu/isa/simd_avx512.h"
#include "kernels/cpu/maddness/encode_impl.h"
#include "kernels/cpu/maddness/encode_wide_impl.h"
#include "kernels/cpu/maddness/scan_impl.h"
#include "kernels/cpu/maddness/scan_vnni_impl.h"
#include "kernels/cpu/maddness/scan_wide_impl.h"
#include "kernels/cpu/maddness/scan_wide_vbmi_impl.h"

namespace lutmul::kernels {
namespace {
void scan_dispatch(const ScanArgs& args, int64_t block_begin, int64_t block_end, int64_t m_begin, int64_t m_end) {
  if (args.averaged) {
    scan_blocks<Avx512Ops>(args, block_begin, block_end, m_begin, m_end);
  } else {
    scan_blocks_vnni(args, block_begin, block_end, m_begin, m_end);
  }
}
}  // namespace

const KernelTable* avx512vbmi_kernels() {
  static const KernelTable table{encode_blocks<Avx512Ops>, scan_dispatch, encode_wide_blocks<Avx512Ops>,
                                 scan_wide_blocks_vbmi};
  return &table;
}

}  // namespace lutmul::kernels
