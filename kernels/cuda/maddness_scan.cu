// MADDNESS scan on the GPU: Y[i][m] = float(Σ_c T[m][c][code(i, c)])·scale + offset[m],
// equal to kernels/cpu/maddness/maddness_scalar.cpp bit for bit (exact integer sums; two float roundings).
//
// Layout and bank reasoning (docs/design.md, "CUDA"):
// - A warp works on one 64-row code block and 16 outputs at a time; lane w owns rows w and
//   32 + w, so one 16-bit load per codebook pair gives it both rows' codes and the warp
//   reads the pair's 64 bytes in one coalesced transaction. The loads of 4 pairs go out
//   before their lookups, and the (code block, 16 outputs) items are spread over enough
//   warps to fill the device: the scan is bound by latency, not by its lookups.
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

// Groups of 4 outputs a warp sums per pass: 4 · 4 accumulators for each of its two rows.
// On an H200 4 and 8 groups ran the same at M = 100, C = 16, and 4 was 1.3x faster at M = 10
// (less work on the tables' padding, more warps): docs/experiments.md, "H200, first run".
constexpr int kGroups = 4;
constexpr int kColumns = 4 * kGroups, kStageStride = kColumns + 1;
constexpr size_t kStageBytes = sizeof(float) * kScanWarps * 32 * kStageStride;
constexpr int kCodePrefetch = 4;  // code words loaded ahead of their lookups

// kChunked: the tables of all codebooks do not fit; tile_groups == kGroups and the pairs go
// through shared memory `chunk_pairs` at a time.
// Work items: a warp takes one (64-row code block, pass of kGroups groups) at a time, so a
// small M or N still spreads over many warps, and the warps of a block share code words.
template <bool kAveraged, bool kChunked>
__global__ void __launch_bounds__(kScanThreads) scan_kernel(ScanParams p, int tile_groups, int chunk_pairs) {
  extern __shared__ uint32_t shared[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int codebook_stride = tile_groups * 16;  // words per codebook in shared memory
  uint32_t* tables = shared;
  float* stage = reinterpret_cast<float*>(shared + static_cast<size_t>(2 * chunk_pairs) * codebook_stride) +
                 warp * 32 * kStageStride;

  const int64_t group0 = static_cast<int64_t>(blockIdx.x) * tile_groups;
  const int groups_here = static_cast<int>(min(static_cast<int64_t>(tile_groups), p.groups - group0));
  // Passes over the groups that hold an output below M (the tables are padded to 32 outputs).
  const int64_t live_groups = min(static_cast<int64_t>(groups_here), (p.outputs - 4 * group0 + 3) / 4);
  const int passes = live_groups > 0 ? static_cast<int>((live_groups + kGroups - 1) / kGroups) : 0;
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

  const int64_t items = (p.rows + kBlockRows - 1) / kBlockRows * passes;
  for (int64_t set = blockIdx.y; set * kScanWarps < items; set += gridDim.y) {
    const int64_t item = set * kScanWarps + warp;
    const bool active = item < items;  // uniform per warp; inactive warps still meet the barriers
    const int64_t block = active ? item / passes : 0;
    const int sub = active ? static_cast<int>(item % passes) * kGroups : 0;
    const uint16_t* codes = reinterpret_cast<const uint16_t*>(p.packed + block * npairs * kBlockRows) + lane;

    uint32_t total[2][kColumns];
    if constexpr (kChunked) {
#pragma unroll
      for (int j = 0; j < kColumns; ++j) total[0][j] = total[1][j] = 0;
    }
    uint32_t even[2][kGroups], odd[2][kGroups];
    for (int chunk = 0; chunk < nchunks; ++chunk) {
      const int pair0 = chunk * chunk_pairs;
      const int pairs = kChunked ? min(chunk_pairs, npairs - pair0) : npairs;
      if constexpr (kChunked) {
        __syncthreads();
        load_tables(pair0, pairs);
        __syncthreads();
      }
#pragma unroll
      for (int g = 0; g < kGroups; ++g) even[0][g] = even[1][g] = odd[0][g] = odd[1][g] = 0;
      if (active) {
        for (int q0 = 0; q0 < pairs; q0 += kCodePrefetch) {
          uint32_t words[kCodePrefetch];  // independent loads, issued before the lookups
#pragma unroll
          for (int u = 0; u < kCodePrefetch; ++u)
            words[u] = q0 + u < pairs ? __ldg(codes + (pair0 + q0 + u) * (kBlockRows / 2)) : 0u;
#pragma unroll
          for (int u = 0; u < kCodePrefetch; ++u) {
            if (q0 + u >= pairs) break;
            const uint32_t* first = tables + (2 * (q0 + u)) * codebook_stride + sub * 16;
            const uint32_t* second = first + codebook_stride;
            // Bits 0-7: row lane (codebooks 2q, 2q + 1); bits 8-15: row 32 + lane.
            const uint32_t a0 = words[u] & 15u, b0 = (words[u] >> 4) & 15u;
            const uint32_t a1 = (words[u] >> 8) & 15u, b1 = words[u] >> 12;
#pragma unroll
            for (int g = 0; g < kGroups; ++g) {
              accumulate<kAveraged>(even[0][g], odd[0][g], first[g * 16 + a0], second[g * 16 + b0]);
              accumulate<kAveraged>(even[1][g], odd[1][g], first[g * 16 + a1], second[g * 16 + b1]);
            }
          }
        }
      }
      if constexpr (kChunked) {
#pragma unroll
        for (int g = 0; g < kGroups; ++g)
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
      for (int g = 0; g < kGroups; ++g)
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

template <bool kAveraged, bool kChunked>
cudaError_t launch(const ScanParams& p, int tile_groups, int chunk_pairs, size_t shared_bytes, cudaStream_t stream) {
  auto kernel = scan_kernel<kAveraged, kChunked>;
  cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(shared_bytes));
  if (status != cudaSuccess) return status;
  int resident = 0;
  status = resident_blocks(kernel, kScanThreads, shared_bytes, &resident);
  if (status != cudaSuccess) return status;
  // Tiles and passes over the outputs below M only.
  const int64_t live_groups = (p.outputs + 3) / 4;
  const int64_t output_tiles = (live_groups + tile_groups - 1) / tile_groups;
  const int64_t passes = (std::min<int64_t>(tile_groups, live_groups) + kGroups - 1) / kGroups;
  const int64_t items = (p.rows + kBlockRows - 1) / kBlockRows * passes;  // per tile, at most
  // Enough blocks to fill the device once; each then strides over its tile's items.
  const int64_t per_tile = std::max<int64_t>(1, (resident + output_tiles - 1) / output_tiles);
  const dim3 grid(static_cast<unsigned>(output_tiles),
                  static_cast<unsigned>(std::min<int64_t>({(items + kScanWarps - 1) / kScanWarps, per_tile, 65535})));
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
  const size_t per_group = 2 * static_cast<size_t>(p.npairs) * codebook_group_bytes;  // all codebooks

  // Whole tables per output tile: up to 64 KiB of tables (a few blocks per SM), at least
  // one pass.
  if (p.npairs <= kMaxPairsPerRound && per_group * kGroups + kStageBytes <= limit) {
    int64_t tile_groups = std::max<int64_t>(kGroups, static_cast<int64_t>((64 * 1024) / per_group) / kGroups * kGroups);
    tile_groups = std::min<int64_t>(tile_groups, p.groups);
    tile_groups = std::min<int64_t>(tile_groups, static_cast<int64_t>((limit - kStageBytes) / per_group) / kGroups * kGroups);
    const size_t shared_bytes = per_group * static_cast<size_t>(tile_groups) + kStageBytes;
    const int tg = static_cast<int>(tile_groups);
    return p.averaged ? launch<true, false>(p, tg, p.npairs, shared_bytes, stream)
                      : launch<false, false>(p, tg, p.npairs, shared_bytes, stream);
  }
  // Chunked: one pass of groups per block, as many pairs per round as shared memory holds.
  const size_t per_pair = 2 * codebook_group_bytes * kGroups;
  if (limit < kStageBytes + per_pair) return cudaErrorInvalidConfiguration;
  const int chunk_pairs = static_cast<int>(
      std::min<size_t>({static_cast<size_t>(kMaxPairsPerRound), static_cast<size_t>(p.npairs), (limit - kStageBytes) / per_pair}));
  const size_t shared_bytes = per_pair * static_cast<size_t>(chunk_pairs) + kStageBytes;
  return p.averaged ? launch<true, true>(p, kGroups, chunk_pairs, shared_bytes, stream)
                    : launch<false, true>(p, kGroups, chunk_pairs, shared_bytes, stream);
}

}  // namespace lutmul::cuda::kernels
