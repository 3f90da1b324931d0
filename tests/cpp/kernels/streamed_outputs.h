// Y written past the caches (ScanArgs::stream_y), checked for one kernel level, for 16-leaf and
// 64-leaf scans alike: the same bits as plain stores, with Y's rows contiguous (ldy = M, where a
// staged block goes out as one span) or apart (plain stores), Y's start on a 64-byte boundary or
// one float past it, the outputs in one range or split as threads split them (a range narrower
// than ldy: plain stores), with and without GELU; Y's padding is left as it was.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/maddness/maddness_kernels.h"

namespace lutmul::testing {

// `base` describes codes, tables, scales and offsets (output fields unset).
inline void expect_streamed_outputs_match(const kernels::KernelTable& level, kernels::ScanFn kernels::KernelTable::*scan,
                                          const kernels::ScanArgs& base, const std::string& what) {
  const int64_t n = base.rows, m = base.outputs;
  const int64_t nblocks = (n + kernels::kBlockRows - 1) / kernels::kBlockRows;
  for (const int64_t ldy : {m, m + 3})
    for (const int64_t shift : {0, 1})
      for (const bool split : {false, true})
        for (const bool gelu : {false, true}) {
          const auto run = [&](bool stream) {
            std::vector<float> storage(static_cast<size_t>(n * ldy + 32), -7.25f);
            const auto address = reinterpret_cast<uintptr_t>(storage.data());
            const int64_t boundary = static_cast<int64_t>((64 - address % 64) % 64 / sizeof(float));
            kernels::ScanArgs args = base;
            args.output = kernels::ScanOutput::f32;
            args.gelu = gelu;
            args.stream_y = stream;
            args.y = storage.data() + boundary + shift;
            args.ldy = ldy;
            const int64_t cut = split ? m / 2 : m;
            (level.*scan)(args, 0, nblocks, 0, cut);
            if (cut < m) (level.*scan)(args, 0, nblocks, cut, m);
            // From the boundary: Y with the padding around it, at the same place in both runs.
            return std::vector<float>(storage.begin() + boundary, storage.begin() + boundary + n * ldy + 16);
          };
          ASSERT_EQ(run(false), run(true)) << what << ": ldy " << ldy << ", start " << shift << " past 64 bytes"
                                           << (split ? ", outputs split" : "") << (gelu ? ", GELU" : "");
        }
}

}  // namespace lutmul::testing
