// Multi-adapter LoRA on the GPU: Y[i] += s_a·(X[i]·A_a)·B_a for a = ids[i], all adapters in
// three launches whatever their number (segmented, as Punica's SGMV):
//   1. group: one block counts rows per adapter, scans the counts into segment offsets,
//      lists tiles of ≤ 16 rows of one adapter, and scatters row indices into segments;
//   2. shrink: one block per (tile, K slice) computes the tile's X·A_a partial product
//      from shared-memory tiles of X rows and A_a, added into `shrunk` (fp32 atomics when
//      K is split across blocks for parallelism);
//   3. expand: one block per (tile, 128 outputs): each thread owns an output column, reads
//      B_a's column once and updates the tile's rows of Y in place (each element of Y has
//      exactly one writer).
// A reference path (one block per row) and gather/scatter helpers for the per-adapter
// baseline live here too.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/device_limits.cuh"
#include "kernels/cuda/kernels.h"

namespace lutmul::cuda::kernels {
namespace {

constexpr int kTileRows = kLoraTileRows;
constexpr int kGroupThreads = 1024;
constexpr int kShrinkThreads = 256;
constexpr int kShrinkK = 32;  // K values per shared-memory step
constexpr int kShrinkOutputsPerThread = kTileRows * kLoraMaxRank / kShrinkThreads;
constexpr int kExpandThreads = 128;

// Exclusive prefix sum over the block of one value per thread; *total gets the sum.
__device__ int block_exclusive_scan(int value, int* warp_sums, int* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  int inclusive = value;
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) {
    const int other = __shfl_up_sync(0xffffffffu, inclusive, offset);
    if (lane >= offset) inclusive += other;
  }
  if (lane == 31) warp_sums[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    int sum = lane < nwarps ? warp_sums[lane] : 0;
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      const int other = __shfl_up_sync(0xffffffffu, sum, offset);
      if (lane >= offset) sum += other;
    }
    if (lane < nwarps) warp_sums[lane] = sum;  // inclusive prefix of warp totals
  }
  __syncthreads();
  const int before = (warp > 0 ? warp_sums[warp - 1] : 0) + inclusive - value;
  *total = warp_sums[nwarps - 1];
  __syncthreads();  // warp_sums may be reused by the caller
  return before;
}

// Adapter of row i, or −1 for none and for a bad id (which raises the error flag).
__device__ __forceinline__ int adapter_of(const LoraParams& p, int64_t i) {
  if (i >= p.rows) return -1;
  const int a = __ldg(p.ids + i);
  if (a >= 0 && a < p.nadapters) return a;
  if (a != -1 && p.error_flag != nullptr) *p.error_flag = 1;
  return -1;
}

// Shared memory: segment[A + 1], cursor[A] (first the counts), then 32 warp sums.
__global__ void __launch_bounds__(kGroupThreads) lora_group_kernel(LoraParams p, LoraWorkspace w) {
  extern __shared__ int shared[];
  const int A = p.nadapters;
  int* segment = shared;
  int* cursor = segment + A + 1;
  int* warp_sums = cursor + A;
  const int lane = threadIdx.x & 31;
  const unsigned lanes_below = (1u << lane) - 1u;

  for (int a = threadIdx.x; a < A; a += blockDim.x) cursor[a] = 0;
  __syncthreads();
  // Rows per adapter; lanes with the same adapter add once (warp-aggregated atomics).
  for (int64_t base = 0; base < p.rows; base += blockDim.x) {
    const int a = adapter_of(p, base + threadIdx.x);
    const unsigned peers = __match_any_sync(0xffffffffu, a);
    if (a >= 0 && lane == __ffs(peers) - 1) atomicAdd(&cursor[a], __popc(peers));
  }
  __syncthreads();

  // Each thread scans a contiguous run of adapters: row and tile offsets.
  const int per_thread = (A + blockDim.x - 1) / blockDim.x;
  const int a0 = min(A, static_cast<int>(threadIdx.x) * per_thread), a1 = min(A, a0 + per_thread);
  int rows_here = 0, tiles_here = 0;
  for (int a = a0; a < a1; ++a) {
    rows_here += cursor[a];
    tiles_here += (cursor[a] + kTileRows - 1) / kTileRows;
  }
  int total_rows = 0, total_tiles = 0;
  int row_offset = block_exclusive_scan(rows_here, warp_sums, &total_rows);
  int tile_offset = block_exclusive_scan(tiles_here, warp_sums, &total_tiles);
  for (int a = a0; a < a1; ++a) {
    const int count = cursor[a];
    segment[a] = row_offset;
    for (int t = 0; t * kTileRows < count; ++t) {
      int32_t* tile = w.tiles + 3 * static_cast<int64_t>(tile_offset + t);
      tile[0] = a;
      tile[1] = row_offset + t * kTileRows;
      tile[2] = min(kTileRows, count - t * kTileRows);
    }
    row_offset += count;
    tile_offset += (count + kTileRows - 1) / kTileRows;
  }
  if (threadIdx.x == 0) {
    segment[A] = total_rows;
    *w.tile_count = total_tiles;
  }
  __syncthreads();
  for (int a = threadIdx.x; a < A; a += blockDim.x) cursor[a] = 0;
  __syncthreads();

  // Row indices into their segments (order within a segment does not matter: rows are
  // independent).
  for (int64_t base = 0; base < p.rows; base += blockDim.x) {
    const int64_t i = base + threadIdx.x;
    const int a = i < p.rows ? __ldg(p.ids + i) : -1;
    const int key = (a >= 0 && a < A) ? a : -1;
    const unsigned peers = __match_any_sync(0xffffffffu, key);
    const int leader = __ffs(peers) - 1;
    int start = 0;
    if (key >= 0 && lane == leader) start = atomicAdd(&cursor[key], __popc(peers));
    start = __shfl_sync(0xffffffffu, start, leader);  // each lane reads its own group's leader
    if (key >= 0) w.order[segment[key] + start + __popc(peers & lanes_below)] = static_cast<int32_t>(i);
  }
}

__global__ void __launch_bounds__(kShrinkThreads) lora_shrink_kernel(LoraParams p, LoraWorkspace w, int64_t k_per_slice) {
  __shared__ float x_tile[kTileRows][kShrinkK + 1];  // +1: rows of one k step in distinct banks
  __shared__ float a_tile[kShrinkK * kLoraMaxRank];
  __shared__ int rows[kTileRows];
  if (static_cast<int>(blockIdx.x) >= *w.tile_count) return;
  const int32_t* tile = w.tiles + 3 * static_cast<int64_t>(blockIdx.x);
  const int adapter = tile[0], position = tile[1], count = tile[2];
  const int r = __ldg(p.ranks + adapter);
  const int64_t k0 = static_cast<int64_t>(blockIdx.y) * k_per_slice;
  const int64_t k1 = min(p.input_dim, k0 + k_per_slice);
  if (k0 >= k1) return;
  const float* a = p.a + __ldg(p.a_offsets + adapter);
  if (threadIdx.x < kTileRows) rows[threadIdx.x] = threadIdx.x < count ? w.order[position + threadIdx.x] : 0;
  __syncthreads();

  const int outputs = count * r;
  float acc[kShrinkOutputsPerThread];
#pragma unroll
  for (int q = 0; q < kShrinkOutputsPerThread; ++q) acc[q] = 0.f;
  for (int64_t kb = k0; kb < k1; kb += kShrinkK) {
    const int steps = static_cast<int>(min(static_cast<int64_t>(kShrinkK), k1 - kb));
    for (int e = threadIdx.x; e < kTileRows * kShrinkK; e += kShrinkThreads) {
      const int i = e / kShrinkK, kk = e % kShrinkK;
      x_tile[i][kk] = (i < count && kk < steps)
                          ? __ldg(p.x + static_cast<int64_t>(rows[i]) * p.x_row_stride + (kb + kk) * p.x_col_stride)
                          : 0.f;
    }
    for (int e = threadIdx.x; e < kShrinkK * r; e += kShrinkThreads)
      a_tile[e] = e < steps * r ? __ldg(a + kb * r + e) : 0.f;  // rows kb.. of A_a are contiguous
    __syncthreads();
#pragma unroll
    for (int q = 0; q < kShrinkOutputsPerThread; ++q) {
      const int o = threadIdx.x + q * kShrinkThreads;
      if (o < outputs) {
        const int i = o / r, j = o % r;
        float sum = acc[q];
#pragma unroll 8
        for (int kk = 0; kk < kShrinkK; ++kk) sum = fmaf(x_tile[i][kk], a_tile[kk * r + j], sum);
        acc[q] = sum;
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int q = 0; q < kShrinkOutputsPerThread; ++q) {
    const int o = threadIdx.x + q * kShrinkThreads;
    if (o < outputs) atomicAdd(w.shrunk + static_cast<int64_t>(position + o / r) * p.max_rank + o % r, acc[q]);
  }
}

__global__ void __launch_bounds__(kExpandThreads) lora_expand_kernel(LoraParams p, LoraWorkspace w) {
  __shared__ float t_tile[kTileRows * kLoraMaxRank];
  __shared__ int rows[kTileRows];
  if (static_cast<int>(blockIdx.x) >= *w.tile_count) return;
  const int32_t* tile = w.tiles + 3 * static_cast<int64_t>(blockIdx.x);
  const int adapter = tile[0], position = tile[1], count = tile[2];
  const int r = __ldg(p.ranks + adapter);
  const float scale = __ldg(p.scales + adapter);
  for (int e = threadIdx.x; e < kTileRows * r; e += kExpandThreads) {
    const int i = e / r, j = e % r;
    t_tile[e] = i < count ? scale * w.shrunk[static_cast<int64_t>(position + i) * p.max_rank + j] : 0.f;
  }
  if (threadIdx.x < kTileRows) rows[threadIdx.x] = threadIdx.x < count ? w.order[position + threadIdx.x] : 0;
  __syncthreads();
  const int64_t m = static_cast<int64_t>(blockIdx.y) * kExpandThreads + threadIdx.x;
  if (m >= p.output_dim) return;
  const float* b = p.b + __ldg(p.b_offsets + adapter) + m;
  float acc[kTileRows];
#pragma unroll
  for (int i = 0; i < kTileRows; ++i) acc[i] = 0.f;
  for (int j = 0; j < r; ++j) {
    const float bj = __ldg(b + static_cast<int64_t>(j) * p.output_dim);
#pragma unroll
    for (int i = 0; i < kTileRows; ++i) acc[i] = fmaf(t_tile[i * r + j], bj, acc[i]);
  }
#pragma unroll
  for (int i = 0; i < kTileRows; ++i)
    if (i < count) p.y[static_cast<int64_t>(rows[i]) * p.ldy + m] += acc[i];
}

// One block per row: t = s·(x·A) with a thread per rank index, then y += t·B with threads
// over outputs. Plain sequential sums; no grouping, no atomics.
__global__ void __launch_bounds__(256) lora_reference_kernel(LoraParams p) {
  __shared__ float t[kLoraMaxRank];
  for (int64_t i = blockIdx.x; i < p.rows; i += gridDim.x) {
    const int adapter = __ldg(p.ids + i);
    if (adapter < 0 || adapter >= p.nadapters) continue;  // uniform per block
    const int r = __ldg(p.ranks + adapter);
    const float* a = p.a + __ldg(p.a_offsets + adapter);
    const float* b = p.b + __ldg(p.b_offsets + adapter);
    const float* x = p.x + i * p.x_row_stride;
    for (int j = threadIdx.x; j < r; j += blockDim.x) {
      float sum = 0.f;
      for (int64_t k = 0; k < p.input_dim; ++k) sum = fmaf(__ldg(x + k * p.x_col_stride), __ldg(a + k * r + j), sum);
      t[j] = __ldg(p.scales + adapter) * sum;
    }
    __syncthreads();
    for (int64_t m = threadIdx.x; m < p.output_dim; m += blockDim.x) {
      float sum = 0.f;
      for (int j = 0; j < r; ++j) sum = fmaf(t[j], __ldg(b + static_cast<int64_t>(j) * p.output_dim + m), sum);
      p.y[i * p.ldy + m] += sum;
    }
    __syncthreads();
  }
}

__global__ void gather_rows_kernel(const float* x, int64_t row_stride, int64_t col_stride, int64_t cols,
                                   const int32_t* rows, int64_t count, float* out) {
  for (int64_t i = blockIdx.y; i < count; i += gridDim.y) {
    const float* source = x + static_cast<int64_t>(__ldg(rows + i)) * row_stride;
    for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < cols;
         k += static_cast<int64_t>(gridDim.x) * blockDim.x)
      out[i * cols + k] = __ldg(source + k * col_stride);
  }
}

__global__ void scatter_add_rows_kernel(const float* update, int64_t cols, const int32_t* rows, int64_t count, float* y,
                                        int64_t ldy) {
  for (int64_t i = blockIdx.y; i < count; i += gridDim.y) {
    float* target = y + static_cast<int64_t>(__ldg(rows + i)) * ldy;
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < cols;
         j += static_cast<int64_t>(gridDim.x) * blockDim.x)
      target[j] += __ldg(update + i * cols + j);
  }
}

dim3 row_grid(int64_t count, int64_t cols, int threads) {
  return dim3(static_cast<unsigned>(std::min<int64_t>((cols + threads - 1) / threads, 1 << 20)),
              static_cast<unsigned>(std::min<int64_t>(count, 65535)));
}

}  // namespace

cudaError_t launch_lora_grouped(const LoraParams& p, const LoraWorkspace& w, int multiprocessors, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  cudaError_t status = cudaMemsetAsync(w.shrunk, 0, static_cast<size_t>(p.rows) * p.max_rank * sizeof(float), stream);
  if (status != cudaSuccess) return status;
  const size_t group_shared = (2 * static_cast<size_t>(p.nadapters) + 1 + 32) * sizeof(int);
  lora_group_kernel<<<1, kGroupThreads, group_shared, stream>>>(p, w);
  if ((status = cudaGetLastError()) != cudaSuccess) return status;

  // Split K so that about two blocks per multiprocessor run even for a handful of tiles.
  const int64_t tiles_estimate = (p.rows + kTileRows - 1) / kTileRows;
  const int64_t k_steps = (p.input_dim + kShrinkK - 1) / kShrinkK;
  const int64_t slices = std::clamp<int64_t>((2 * multiprocessors + tiles_estimate - 1) / tiles_estimate, 1,
                                             std::min<int64_t>(k_steps, 65535));
  const int64_t k_per_slice = (k_steps + slices - 1) / slices * kShrinkK;
  const dim3 shrink_grid(static_cast<unsigned>(w.max_tiles), static_cast<unsigned>((p.input_dim + k_per_slice - 1) / k_per_slice));
  lora_shrink_kernel<<<shrink_grid, kShrinkThreads, 0, stream>>>(p, w, k_per_slice);
  if ((status = cudaGetLastError()) != cudaSuccess) return status;

  const dim3 expand_grid(static_cast<unsigned>(w.max_tiles),
                         static_cast<unsigned>((p.output_dim + kExpandThreads - 1) / kExpandThreads));
  lora_expand_kernel<<<expand_grid, kExpandThreads, 0, stream>>>(p, w);
  return cudaGetLastError();
}

cudaError_t launch_lora_reference(const LoraParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  const auto blocks = static_cast<unsigned>(std::min<int64_t>(p.rows, 65535));
  lora_reference_kernel<<<blocks, 256, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_gather_rows(const float* x, int64_t row_stride, int64_t col_stride, int64_t cols, const int32_t* rows,
                               int64_t count, float* out, cudaStream_t stream) {
  if (count == 0 || cols == 0) return cudaSuccess;
  gather_rows_kernel<<<row_grid(count, cols, 256), 256, 0, stream>>>(x, row_stride, col_stride, cols, rows, count, out);
  return cudaGetLastError();
}

cudaError_t launch_scatter_add_rows(const float* update, int64_t cols, const int32_t* rows, int64_t count, float* y,
                                    int64_t ldy, cudaStream_t stream) {
  if (count == 0 || cols == 0) return cudaSuccess;
  scatter_add_rows_kernel<<<row_grid(count, cols, 256), 256, 0, stream>>>(update, cols, rows, count, y, ldy);
  return cudaGetLastError();
}

}  // namespace lutmul::cuda::kernels
