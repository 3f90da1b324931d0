// MADDNESS encode on the GPU: a 4-level tree walk per row and codebook that reads only the
// split columns, written as the EncodedRows packed layout (byte 2w of a pair's 64 bytes is
// row w, byte 2w+1 row 32+w; low nibble codebook 2p, high nibble 2p+1). Must equal
// kernels/cpu/maddness/maddness_scalar.cpp byte for byte: x > threshold goes right (a NaN
// goes left), rows past N and a phantom codebook (odd C) get code 0.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/device_limits.cuh"
#include "kernels/cuda/kernels.h"

namespace lutmul::cuda::kernels {
namespace {

constexpr int kEncodeWarps = 4;
constexpr int kEncodeThreads = 32 * kEncodeWarps;
// Shared tile [column][row] with rows padded to 65: a warp writing one row (lanes over
// columns) and a warp reading one column (lanes over rows) both touch 32 distinct banks.
constexpr int kTileStride = kBlockRows + 1;

// The tree walk of one row for one codebook, from its 4 split values.
__device__ __forceinline__ int walk(const float* thresholds, float x0, float x1, float x2, float x3) {
  int node = x0 > __ldg(thresholds) ? 1 : 0;
  node = 2 * node + (x1 > __ldg(thresholds + kThresholdStride + node) ? 1 : 0);
  node = 2 * node + (x2 > __ldg(thresholds + 2 * kThresholdStride + node) ? 1 : 0);
  node = 2 * node + (x3 > __ldg(thresholds + 3 * kThresholdStride + node) ? 1 : 0);
  return node;
}

// Row-major A. One block per (64-row code block, chunk of codebook pairs): the warps gather
// the chunk's split columns of the 64 rows into shared memory, a row at a time with lanes
// over the ascending column list (so each load instruction touches the few 32-byte sectors
// of one row that hold split columns, nothing else), then each warp walks the trees of one
// pair for rows (lane, lane + 32) and writes the pair's 64 bytes as one coalesced store.
__global__ void __launch_bounds__(kEncodeThreads) encode_row_major_kernel(EncodeParams p) {
  __shared__ float tile[kEncodeTileColumns * kTileStride];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t nblocks = (p.rows + kBlockRows - 1) / kBlockRows;
  const int64_t items = nblocks * p.nchunks;
  bool saw_nan = false;
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t block = item / p.nchunks;
    const int chunk = static_cast<int>(item % p.nchunks);
    const int column_begin = __ldg(p.chunk_column_begin + chunk);
    const int ncolumns = __ldg(p.chunk_column_begin + chunk + 1) - column_begin;
    const int64_t row0 = block * kBlockRows;

#pragma unroll 4
    for (int r = warp; r < kBlockRows; r += kEncodeWarps) {
      const int64_t row = row0 + r;
      for (int u = lane; u < ncolumns; u += 32) {
        float value = 0.f;
        if (row < p.rows) {
          value = __ldg(p.a + row * p.row_stride + static_cast<int64_t>(__ldg(p.columns + column_begin + u)) * p.col_stride);
          saw_nan |= isnan(value);
        }
        tile[u * kTileStride + r] = value;
      }
    }
    __syncthreads();

    const int pair_end = __ldg(p.chunk_pair_begin + chunk + 1);
    for (int pair = __ldg(p.chunk_pair_begin + chunk) + warp; pair < pair_end; pair += kEncodeWarps) {
      uint32_t word = 0;
      for (int half = 0; half < 2; ++half) {
        const int c = 2 * pair + half;
        if (c >= p.ncodebooks) break;  // the phantom codebook of an odd C: code 0
        const int32_t* slot = p.column_slot + c * kTreeDepth;
        const float* low = tile + lane, *high = tile + lane + 32;
        const int s0 = __ldg(slot) * kTileStride, s1 = __ldg(slot + 1) * kTileStride;
        const int s2 = __ldg(slot + 2) * kTileStride, s3 = __ldg(slot + 3) * kTileStride;
        const float* thresholds = p.thresholds + c * kTreeDepth * kThresholdStride;
        const int code_low = walk(thresholds, low[s0], low[s1], low[s2], low[s3]);
        const int code_high = walk(thresholds, high[s0], high[s1], high[s2], high[s3]);
        word |= static_cast<uint32_t>(code_low) << (4 * half);
        word |= static_cast<uint32_t>(code_high) << (8 + 4 * half);
      }
      if (row0 + lane >= p.rows) word &= 0xFF00u;
      if (row0 + 32 + lane >= p.rows) word &= 0x00FFu;
      reinterpret_cast<uint16_t*>(p.packed + (block * p.npairs + pair) * kBlockRows)[lane] = static_cast<uint16_t>(word);
    }
    __syncthreads();  // the next item overwrites the tile
  }
  if (saw_nan && p.nan_flag != nullptr) *p.nan_flag = 1;
}

// Column-major A. One warp per (code block, pair): lanes are rows, so every split column is
// read as 128 contiguous bytes per warp; all 16 loads of a thread (2 rows × 2 codebooks ×
// 4 levels) are independent of the walk and issued first.
__global__ void __launch_bounds__(kEncodeThreads) encode_col_major_kernel(EncodeParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t nblocks = (p.rows + kBlockRows - 1) / kBlockRows;
  const int64_t items = nblocks * p.npairs;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kEncodeWarps;
  bool saw_nan = false;
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * kEncodeWarps + (threadIdx.x >> 5); item < items;
       item += warps) {
    const int64_t block = item / p.npairs;
    const int pair = static_cast<int>(item % p.npairs);
    const int64_t row_low = block * kBlockRows + lane, row_high = row_low + 32;
    const bool has_low = row_low < p.rows, has_high = row_high < p.rows;
    uint32_t word = 0;
    for (int half = 0; half < 2; ++half) {
      const int c = 2 * pair + half;
      if (c >= p.ncodebooks) break;
      float low[kTreeDepth], high[kTreeDepth];
#pragma unroll
      for (int t = 0; t < kTreeDepth; ++t) {
        const float* column = p.a + static_cast<int64_t>(__ldg(p.split_dims + c * kTreeDepth + t)) * p.col_stride;
        low[t] = has_low ? __ldg(column + row_low * p.row_stride) : 0.f;
        high[t] = has_high ? __ldg(column + row_high * p.row_stride) : 0.f;
        saw_nan |= isnan(low[t]) || isnan(high[t]);
      }
      const float* thresholds = p.thresholds + c * kTreeDepth * kThresholdStride;
      word |= static_cast<uint32_t>(walk(thresholds, low[0], low[1], low[2], low[3])) << (4 * half);
      word |= static_cast<uint32_t>(walk(thresholds, high[0], high[1], high[2], high[3])) << (8 + 4 * half);
    }
    if (!has_low) word &= 0xFF00u;
    if (!has_high) word &= 0x00FFu;
    reinterpret_cast<uint16_t*>(p.packed + (block * p.npairs + pair) * kBlockRows)[lane] = static_cast<uint16_t>(word);
  }
  if (saw_nan && p.nan_flag != nullptr) *p.nan_flag = 1;
}

}  // namespace

cudaError_t probe_kernel_image() {
  cudaFuncAttributes attributes;
  return cudaFuncGetAttributes(&attributes, encode_col_major_kernel);
}

cudaError_t launch_encode_row_major(const EncodeParams& params, cudaStream_t stream) {
  const int64_t nblocks = (params.rows + kBlockRows - 1) / kBlockRows;
  const int64_t items = nblocks * params.nchunks;
  if (items == 0) return cudaSuccess;
  int resident = 0;
  const cudaError_t status = resident_blocks(encode_row_major_kernel, kEncodeThreads, 0, &resident);
  if (status != cudaSuccess) return status;
  const auto grid = static_cast<unsigned>(std::min<int64_t>(items, resident));
  encode_row_major_kernel<<<grid, kEncodeThreads, 0, stream>>>(params);
  return cudaGetLastError();
}

cudaError_t launch_encode_col_major(const EncodeParams& params, cudaStream_t stream) {
  const int64_t nblocks = (params.rows + kBlockRows - 1) / kBlockRows;
  const int64_t items = nblocks * params.npairs;
  if (items == 0) return cudaSuccess;
  int resident = 0;
  const cudaError_t status = resident_blocks(encode_col_major_kernel, kEncodeThreads, 0, &resident);
  if (status != cudaSuccess) return status;
  const auto grid = static_cast<unsigned>(std::min<int64_t>((items + kEncodeWarps - 1) / kEncodeWarps, resident));
  encode_col_major_kernel<<<grid, kEncodeThreads, 0, stream>>>(params);
  return cudaGetLastError();
}

}  // namespace lutmul::cuda::kernels
