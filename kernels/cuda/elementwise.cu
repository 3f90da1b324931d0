// Small kernels around the cuBLAS and cuBLASLt products: bias rows, 16-bit conversion, and
// the int8 operator's activation quantisation and float epilogue. The last two reproduce
// kernels/cpu/int8/int8_scalar.cpp exactly: round-half-even quantisation, IEEE division for the
// row scale, and the epilogue as two separately rounded operations (no fused multiply-add).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/device_limits.cuh"
#include "kernels/cuda/kernels.h"

namespace lutmul::cuda::kernels {
namespace {

constexpr int kThreads = 256;

// A 2-D grid over (rows, columns): x covers columns in 32-wide strips, y covers rows.
dim3 grid_2d(int64_t rows, int64_t cols, int rows_per_block) {
  const int64_t x = (cols + 31) / 32;
  const int64_t y = (rows + rows_per_block - 1) / rows_per_block;
  return dim3(static_cast<unsigned>(std::min<int64_t>(x, 1 << 30)), static_cast<unsigned>(std::min<int64_t>(y, 65535)));
}

__global__ void fill_rows_kernel(float* y, int64_t rows, int64_t cols, int64_t ldy, const float* bias) {
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * 8 + threadIdx.y; i < rows; i += static_cast<int64_t>(gridDim.y) * 8)
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x; j < cols; j += static_cast<int64_t>(gridDim.x) * 32)
      y[i * ldy + j] = __ldg(bias + j);
}

__global__ void convert_16bit_kernel(const float* x, int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride,
                                     bool bf16, uint16_t* out) {
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * 8 + threadIdx.y; i < rows; i += static_cast<int64_t>(gridDim.y) * 8)
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x; j < cols; j += static_cast<int64_t>(gridDim.x) * 32) {
      const float v = __ldg(x + i * row_stride + j * col_stride);
      out[i * cols + j] = bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v)) : __half_as_ushort(__float2half_rn(v));
    }
}

// One warp per row: the row's largest magnitude, then 4 values per lane and step written
// as one 32-bit store (k_padded is a multiple of 4).
__global__ void __launch_bounds__(kThreads) quantize_rows_kernel(const float* x, int64_t rows, int64_t k,
                                                                 int64_t row_stride, int64_t col_stride,
                                                                 int64_t k_padded, int8_t* out, float* scales,
                                                                 int* nonfinite_flag) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kThreads / 32);
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * (kThreads / 32) + (threadIdx.x >> 5); row < rows;
       row += warps) {
    const float* xr = x + row * row_stride;
    float largest = 0.f;
    bool finite = true;
    for (int64_t j = lane; j < k; j += 32) {
      const float v = __ldg(xr + j * col_stride);
      finite &= isfinite(v);
      largest = fmaxf(largest, fabsf(v));  // a NaN is skipped, as in the reference
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) largest = fmaxf(largest, __shfl_xor_sync(0xffffffffu, largest, offset));
    finite = __all_sync(0xffffffffu, finite);
    const float inverse = largest > 0.f ? 127.f / largest : 1.f;
    const float scale = largest > 0.f ? largest / 127.f : 1.f;
    int8_t* outr = out + row * k_padded;
    for (int64_t j0 = 4 * static_cast<int64_t>(lane); j0 < k_padded; j0 += 128) {
      uint32_t packed = 0;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t j = j0 + e;
        float q = j < k ? rintf(__fmul_rn(__ldg(xr + j * col_stride), inverse)) : 0.f;
        if (isnan(q)) q = 0.f;
        q = fminf(127.f, fmaxf(-127.f, q));
        packed |= (static_cast<uint32_t>(static_cast<int>(q)) & 0xFFu) << (8 * e);
      }
      *reinterpret_cast<uint32_t*>(outr + j0) = packed;
    }
    if (lane == 0) {
      scales[row] = scale;
      if (!finite && nonfinite_flag != nullptr) *nonfinite_flag = 1;
    }
  }
}

// One thread per output, 4 k per __dp4a; rows of xq and wt are 16-byte aligned (k_padded is
// a multiple of 16). Simple on purpose: only shapes cuBLASLt refuses come here.
__global__ void int8_gemm_kernel(const int8_t* xq, const int8_t* wt, int64_t rows, int64_t k_padded, int64_t m_padded,
                                 int32_t* acc) {
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * 8 + threadIdx.y; i < rows; i += static_cast<int64_t>(gridDim.y) * 8)
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x; j < m_padded;
         j += static_cast<int64_t>(gridDim.x) * 32) {
      const int* x = reinterpret_cast<const int*>(xq + i * k_padded);
      const int* w = reinterpret_cast<const int*>(wt + j * k_padded);
      int sum = 0;
      for (int64_t q = 0; q < k_padded / 4; ++q) sum = __dp4a(__ldg(x + q), __ldg(w + q), sum);
      acc[i * m_padded + j] = sum;
    }
}

__global__ void int8_epilogue_kernel(const int32_t* acc, int64_t ld_acc, int64_t rows, int64_t cols,
                                     const float* row_scales, const float* weight_scales, const float* bias, float* y,
                                     int64_t ldy) {
  for (int64_t i = static_cast<int64_t>(blockIdx.y) * 8 + threadIdx.y; i < rows; i += static_cast<int64_t>(gridDim.y) * 8) {
    const float row_scale = __ldg(row_scales + i);
    for (int64_t j = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x; j < cols; j += static_cast<int64_t>(gridDim.x) * 32) {
      const float scale = __fmul_rn(row_scale, __ldg(weight_scales + j));
      const float scaled = __fmul_rn(__int2float_rn(__ldg(acc + i * ld_acc + j)), scale);
      y[i * ldy + j] = __fadd_rn(scaled, __ldg(bias + j));
    }
  }
}

}  // namespace

cudaError_t launch_fill_rows(float* y, int64_t rows, int64_t cols, int64_t ldy, const float* bias, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  fill_rows_kernel<<<grid_2d(rows, cols, 8), dim3(32, 8), 0, stream>>>(y, rows, cols, ldy, bias);
  return cudaGetLastError();
}

cudaError_t launch_convert_16bit(const float* x, int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride,
                                 bool bf16, uint16_t* out, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  convert_16bit_kernel<<<grid_2d(rows, cols, 8), dim3(32, 8), 0, stream>>>(x, rows, cols, row_stride, col_stride, bf16,
                                                                          out);
  return cudaGetLastError();
}

cudaError_t launch_quantize_rows(const float* x, int64_t rows, int64_t k, int64_t row_stride, int64_t col_stride,
                                 int64_t k_padded, int8_t* out, float* scales, int* nonfinite_flag, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  int resident = 0;
  const cudaError_t status = resident_blocks(quantize_rows_kernel, kThreads, 0, &resident);
  if (status != cudaSuccess) return status;
  const int64_t blocks = std::min<int64_t>((rows + kThreads / 32 - 1) / (kThreads / 32), resident);
  quantize_rows_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(x, rows, k, row_stride, col_stride,
                                                                               k_padded, out, scales, nonfinite_flag);
  return cudaGetLastError();
}

cudaError_t launch_int8_gemm(const int8_t* xq, const int8_t* wt, int64_t rows, int64_t k_padded, int64_t m_padded,
                             int32_t* acc, cudaStream_t stream) {
  if (rows == 0 || m_padded == 0) return cudaSuccess;
  int8_gemm_kernel<<<grid_2d(rows, m_padded, 8), dim3(32, 8), 0, stream>>>(xq, wt, rows, k_padded, m_padded, acc);
  return cudaGetLastError();
}

cudaError_t launch_int8_epilogue(const int32_t* acc, int64_t ld_acc, int64_t rows, int64_t cols, const float* row_scales,
                                 const float* weight_scales, const float* bias, float* y, int64_t ldy,
                                 cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  int8_epilogue_kernel<<<grid_2d(rows, cols, 8), dim3(32, 8), 0, stream>>>(acc, ld_acc, rows, cols, row_scales,
                                                                          weight_scales, bias, y, ldy);
  return cudaGetLastError();
}

}  // namespace lutmul::cuda::kernels
