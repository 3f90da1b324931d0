// MADDNESS scan on the GPU: Y[i][m] = float(Σ_c T[m][c][code(i, c)])·scale + offset[m],
// equal to kernels/cpu/maddness/maddness_scalar.cpp bit for bit (exact integer sums; two float roundings).
//
// Layout and bank reasoning (docs/design.md, "CUDA"):
// - A warp owns one 64-row code block; lane w owns rows w and 32 + w, so one 16-bit load
//   per codebook pair gives it both rows' codes and the warp reads the pair's 64 bytes in
//   one coalesced transaction.
// - Tables sit in shared memory as 32-bit words that interleave 4 outputs: word [c][g][k]
//   holds the entries of outputs 4g..4g+3 for code k of codebook c. All lanes of a warp
//   look up the same (c, g) at once, so their addresses fall in 16 consecutive words: 16
//   distinct banks, no conflict whatever the codes, and each load yields 4 lookups.
// - Exact sums: a word splits into two words of 16-bit lanes (bytes 0 and 2, bytes 1 and 3)
//   added as plain 32-bit integers; 128 pairs (256 entries ≤ 255) cannot overflow a lane.
//   Averaged mode adds each pair's rounded mean (a + b + 1) >> 1 lane-wise instead.
// - One block loads its output tile's tables once and reuses them for every row block it
//   visits (grid-stride); when C is too large for that, the codebooks go in chunks through
//   shared memory with 32-bit running totals (the chunked variant).
// - Sums go to a per-warp staging tile (rows padded to avoid bank conflicts) so Y is
//   written a row segment at a time, coalesced, with the offset added per column.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/device_limits.cuh"
#include "kernels/cuda/kernels.h"

namespace lutmul::cuda::kernels {
namespace {

constexpr int kScanWarps = 4;
constexpr int kScanThreads = 32 * kScanWarps;
constexpr int kMaxPairsPerRound = 128;  // 16-bit lanes: 2 · 128 · 255 < 65536
constexpr uint32_t kEvenBytes = 0x00FF00FFu;

__device__ __forceinline__ uint32_t odd_bytes(uint32_t word) { return __byte_perm(word, 0u, 0x4341u); }

template <bool kAveraged>
__device__ __forceinline__ void accumulate(uint32_t& even, uint32_t& odd, uint32_t first, uint32_t second) {
  if (kAveraged) {
    even += (((first & kEvenBytes) + (second & kEvenBytes) + 0x00010001u) >> 1) & kEvenBytes;
    odd += ((odd_bytes(first) + odd_bytes(second) + 0x00010001u) >> 1) & kEvenBytes;
  } else {
    even += (first & kEvenBytes) + (second & kEvenBytes);
    odd += odd_bytes(first) + odd_bytes(second);
  }
}

// Sum of output 4g + i from the lane words of group g.
__device__ __forceinline__ uint32_t lane_sum(uint32_t even, uint32_t odd, int i) {
  const uint32_t word = (i & 1) ? odd : even;
  return (i & 2) ? word >> 16 : word & 0xFFFFu;
}

constexpr size_t stage_floats(int groups_per_pass) { return static_cast<size_t>(kScanWarps) * 32 * (4 * groups_per_pass + 1); }

// G: groups of 4 outputs per pass (registers: 4·G accumulators per lane).
// kChunked: the tables of all codebooks do not fit; tile_groups == G and the pairs go
// through shared memory `chunk_pairs` at a time.
template <int G, bool kAveraged, bool kChunked>
__global__ void __launch_bounds__(kScanThreads) scan_kernel(ScanParams p, int tile_groups, int chunk_pairs) {
  constexpr int kColumns = 4 * G, kStageStride = kColumns + 1;
  extern __shared__ uint32_t shared[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int codebook_stride = tile_groups * 16;  // words per codebook in shared memory
  uint32_t* tables = shared;
  float* stage = reinterpret_cast<float*>(shared + static_cast<size_t>(2 * chunk_pairs) * codebook_stride) +
                 warp * 32 * kStageStride;

  const int64_t group0 = static_cast<int64_t>(blockIdx.x) * tile_groups;
  const int groups_here = static_cast<int>(min(static_cast<int64_t>(tile_groups), p.groups - group0));
  const int npairs = p.npairs;
  const int nchunks = kChunked ? (npairs + chunk_pairs - 1) / chunk_pairs : 1;

  // Copies the tables of pairs [pair0, pair0 + pairs) for this block's groups (16-byte moves).
  auto load_tables = [&](int pair0, int pairs) {
    const int vectors_per_codebook = groups_here * 4;  // 16 words = 4 uint4 per group
    const int total = 2 * pairs * vectors_per_codebook;
    for (int i = threadIdx.x; i < total; i += kScanThreads) {
      const int c = i / vectors_per_codebook, v = i % vectors_per_codebook;
      const uint4* source = reinterpret_cast<const uint4*>(p.tables + ((2 * pair0 + c) * p.groups + group0) * 16);
      reinterpret_cast<uint4*>(tables + c * codebook_stride)[v] = __ldg(source + v);
    }
  };
  if constexpr (!kChunked) {
    load_tables(0, npairs);
    __syncthreads();
  }

  const int64_t nblocks = (p.rows + kBlockRows - 1) / kBlockRows;
  for (int64_t set = blockIdx.y; set * kScanWarps < nblocks; set += gridDim.y) {
    const int64_t block = set * kScanWarps + warp;
    const bool active = block < nblocks;  // uniform per warp; inactive warps still meet the barriers
    const uint16_t* codes = reinterpret_cast<const uint16_t*>(p.packed + block * npairs * kBlockRows) + lane;

    for (int sub = 0; sub < groups_here; sub += G) {
      uint32_t total[2][kColumns];
      if constexpr (kChunked) {
#pragma unroll
        for (int j = 0; j < kColumns; ++j) total[0][j] = total[1][j] = 0;
      }
      uint32_t even[2][G], odd[2][G];
      for (int chunk = 0; chunk < nchunks; ++chunk) {
        const int pair0 = chunk * chunk_pairs;
        const int pairs = kChunked ? min(chunk_pairs, npairs - pair0) : npairs;
        if constexpr (kChunked) {
          __syncthreads();
          load_tables(pair0, pairs);
          __syncthreads();
        }
#pragma unroll
        for (int g = 0; g < G; ++g) even[0][g] = even[1][g] = odd[0][g] = odd[1][g] = 0;
        if (active) {
          for (int q = 0; q < pairs; ++q) {
            const uint32_t word = __ldg(codes + (pair0 + q) * (kBlockRows / 2));
            const uint32_t* first = tables + (2 * q) * codebook_stride + sub * 16;
            const uint32_t* second = first + codebook_stride;
            const uint32_t a0 = word & 15u, b0 = (word >> 4) & 15u, a1 = (word >> 8) & 15u, b1 = word >> 12;
#pragma unroll
            for (int g = 0; g < G; ++g) {
              accumulate<kAveraged>(even[0][g], odd[0][g], first[g * 16 + a0], second[g * 16 + b0]);
              accumulate<kAveraged>(even[1][g], odd[1][g], first[g * 16 + a1], second[g * 16 + b1]);
            }
          }
        }
        if constexpr (kChunked) {
#pragma unroll
          for (int g = 0; g < G; ++g)
#pragma unroll
            for (int i = 0; i < 4; ++i) {
              total[0][4 * g + i] += lane_sum(even[0][g], odd[0][g], i);
              total[1][4 * g + i] += lane_sum(even[1][g], odd[1][g], i);
            }
        }
      }
      if (!active) continue;

      // Epilogue: sums into the staging tile (exact: below 2^24), then rows out with lanes
      // along the outputs, each scaled and offset by its output's own.
      const int column = lane % kColumns;
      const int64_t m = (group0 + sub) * 4 + column;
      const float scale = m < p.outputs ? __ldg(p.scales + m) : 0.f;
      const float offset = m < p.outputs ? __ldg(p.offsets + m) : 0.f;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        __syncwarp();
#pragma unroll
        for (int g = 0; g < G; ++g)
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            uint32_t sum;
            if constexpr (kChunked) sum = total[half][4 * g + i];
            else sum = lane_sum(even[half][g], odd[half][g], i);
            stage[lane * kStageStride + 4 * g + i] = __uint2float_rn(sum);
          }
        __syncwarp();
        for (int r = lane / kColumns; r < 32; r += 32 / kColumns) {
          const int64_t row = block * kBlockRows + half * 32 + r;
          if (row < p.rows && m < p.outputs)
            p.y[row * p.ldy + m] = __fadd_rn(__fmul_rn(stage[r * kStageStride + column], scale), offset);
        }
      }
    }
  }
}

template <int G, bool kAveraged, bool kChunked>
cudaError_t launch(const ScanParams& p, int tile_groups, int chunk_pairs, size_t shared_bytes, cudaStream_t stream) {
  auto kernel = scan_kernel<G, kAveraged, kChunked>;
  cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(shared_bytes));
  if (status != cudaSuccess) return status;
  int resident = 0;
  status = resident_blocks(kernel, kScanThreads, shared_bytes, &resident);
  if (status != cudaSuccess) return status;
  const int64_t output_tiles = (p.groups + tile_groups - 1) / tile_groups;
  const int64_t row_sets = (p.rows + kBlockRows * kScanWarps - 1) / (kBlockRows * kScanWarps);
  // Enough blocks to fill the device once; each then strides over row sets.
  const int64_t per_tile = std::max<int64_t>(1, (resident + output_tiles - 1) / output_tiles);
  const dim3 grid(static_cast<unsigned>(output_tiles),
                  static_cast<unsigned>(std::min<int64_t>({row_sets, per_tile, 65535})));
  kernel<<<grid, kScanThreads, shared_bytes, stream>>>(p, tile_groups, chunk_pairs);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_scan(const ScanParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.outputs == 0) return cudaSuccess;
  int device = 0, optin = 0;
  cudaError_t status = cudaGetDevice(&device);
  if (status == cudaSuccess) status = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (status != cudaSuccess) return status;
  const size_t limit = static_cast<size_t>(optin);
  const size_t codebook_group_bytes = 16 * sizeof(uint32_t);  // one group of one codebook
  const size_t codebooks = 2 * static_cast<size_t>(p.npairs);

  // Whole tables per output tile: up to 64 KiB of tables (a few blocks per SM), at least
  // one pass of 8 groups.
  constexpr int kWideG = 8, kNarrowG = 4;
  const size_t wide_stage = stage_floats(kWideG) * sizeof(float);
  if (p.npairs <= kMaxPairsPerRound && codebooks * codebook_group_bytes * kWideG + wide_stage <= limit) {
    const size_t per_group = codebooks * codebook_group_bytes;
    int64_t tile_groups = std::max<int64_t>(kWideG, static_cast<int64_t>((64 * 1024) / per_group) / kWideG * kWideG);
    tile_groups = std::min<int64_t>(tile_groups, p.groups);
    tile_groups = std::min<int64_t>(tile_groups, static_cast<int64_t>((limit - wide_stage) / per_group) / kWideG * kWideG);
    const size_t shared_bytes = per_group * static_cast<size_t>(tile_groups) + wide_stage;
    const int tg = static_cast<int>(tile_groups);
    return p.averaged ? launch<kWideG, true, false>(p, tg, p.npairs, shared_bytes, stream)
                      : launch<kWideG, false, false>(p, tg, p.npairs, shared_bytes, stream);
  }
  // Chunked: 4 groups per block, as many pairs per round as shared memory holds.
  const size_t narrow_stage = stage_floats(kNarrowG) * sizeof(float);
  const size_t per_pair = 2 * codebook_group_bytes * kNarrowG;
  if (limit < narrow_stage + per_pair) return cudaErrorInvalidConfiguration;
  const int chunk_pairs = static_cast<int>(
      std::min<size_t>({static_cast<size_t>(kMaxPairsPerRound), static_cast<size_t>(p.npairs), (limit - narrow_stage) / per_pair}));
  const size_t shared_bytes = per_pair * static_cast<size_t>(chunk_pairs) + narrow_stage;
  return p.averaged ? launch<kNarrowG, true, true>(p, kNarrowG, chunk_pairs, shared_bytes, stream)
                    : launch<kNarrowG, false, true>(p, kNarrowG, chunk_pairs, shared_bytes, stream);
}

}  // namespace lutmul::cuda::kernels
