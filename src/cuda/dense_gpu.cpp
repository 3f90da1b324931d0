// DenseGpu: Y = X·W + bias through cuBLAS (GEMM_EX), fp32 without TF32 by default.
#include <climits>
#include <cmath>
#include <mutex>
#include <vector>

#include "kernels/cuda/kernels.h"
#include "src/cuda/cublas_handle.h"
#include "src/cuda/cuda_check.h"

namespace lutmul::cuda {

using detail::native;
using detail::StreamScratch;

namespace {
bool is_16bit(GpuPrecision p) { return p == GpuPrecision::bf16 || p == GpuPrecision::fp16; }
}  // namespace

struct DenseGpu::Impl {
  int64_t k = 0, m = 0;
  GpuPrecision precision = GpuPrecision::fp32;
  DeviceBuffer<float> weights;      // K × M row-major (fp32, tf32)
  DeviceBuffer<uint16_t> weights16; // K × M row-major (bf16, fp16)
  DeviceBuffer<float> bias;
  detail::CublasHandle cublas;

  // Row-major Y = X·W is column-major Yᵀ = Wᵀ·Xᵀ: W (row-major K × M) is column-major
  // M × K; X row-major is column-major K × N (no transpose), X column-major needs one.
  // Y already holds the bias (beta = 1).
  void gemm(const void* x, cudaDataType x_type, bool x_row_major, int64_t ldx, int64_t rows, float* y, int64_t ldy,
            cudaStream_t stream) const {
    LUTMUL_CHECK(rows <= INT_MAX && ldx <= INT_MAX && ldy <= INT_MAX,
                 "DenseGpu: sizes beyond 2^31 - 1 are not supported by cuBLAS (", rows, " rows, ld ", ldx, ", ldy ",
                 ldy, ")");
    const float one = 1.f;
    const bool half = is_16bit(precision);
    const cudaDataType w_type = !half ? CUDA_R_32F : precision == GpuPrecision::bf16 ? CUDA_R_16BF : CUDA_R_16F;
    const void* w = half ? static_cast<const void*>(weights16.data()) : static_cast<const void*>(weights.data());
    const cublasComputeType_t compute =
        precision == GpuPrecision::tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const auto binding = cublas.bind(stream);
    LUTMUL_CUBLAS_CHECK(cublasGemmEx(cublas.get(), CUBLAS_OP_N, x_row_major ? CUBLAS_OP_N : CUBLAS_OP_T,
                                     static_cast<int>(m), static_cast<int>(rows), static_cast<int>(k), &one, w, w_type,
                                     static_cast<int>(m), x, x_type, static_cast<int>(ldx), &one, y, CUDA_R_32F,
                                     static_cast<int>(ldy), compute, CUBLAS_GEMM_DEFAULT));
  }
};

DenseGpu::DenseGpu(const MatrixView& W, const float* bias, GpuPrecision precision)
    : impl_((detail::require_device("DenseGpu"), std::make_unique<Impl>())) {
  // (The device check runs before Impl exists: without a device no library handle is made.)
  check_view(W, "W");
  LUTMUL_CHECK(W.rows >= 1 && W.cols >= 1, "DenseGpu: W must not be empty, got ", W.rows, " x ", W.cols);
  LUTMUL_CHECK(W.rows <= INT_MAX && W.cols <= INT_MAX, "DenseGpu: W is too large for cuBLAS (", W.rows, " x ", W.cols,
               ")");
  check_finite(W, "W");
  Impl& s = *impl_;
  s.k = W.rows;
  s.m = W.cols;
  s.precision = precision;
  std::vector<float> weights(static_cast<size_t>(s.k * s.m));
  for (int64_t i = 0; i < s.k; ++i)
    for (int64_t j = 0; j < s.m; ++j) weights[static_cast<size_t>(i * s.m + j)] = W.at(i, j);
  std::vector<float> b(static_cast<size_t>(s.m), 0.f);
  if (bias != nullptr)
    for (int64_t j = 0; j < s.m; ++j) {
      LUTMUL_CHECK(std::isfinite(bias[j]), "DenseGpu: bias has a non-finite value at index ", j);
      b[static_cast<size_t>(j)] = bias[j];
    }
  s.bias = DeviceBuffer<float>(b);
  s.weights = DeviceBuffer<float>(weights);
  if (is_16bit(precision)) {  // rounded once on the device, the same conversion X gets
    s.weights16 = DeviceBuffer<uint16_t>(weights.size());
    LUTMUL_CUDA_CHECK(kernels::launch_convert_16bit(s.weights.data(), s.k, s.m, s.m, 1,
                                                    precision == GpuPrecision::bf16, s.weights16.data(), nullptr));
    LUTMUL_CUDA_CHECK(cudaStreamSynchronize(nullptr));
    s.weights = DeviceBuffer<float>();
  }
}

DenseGpu::~DenseGpu() = default;

int64_t DenseGpu::input_dim() const { return impl_->k; }
int64_t DenseGpu::output_dim() const { return impl_->m; }
GpuPrecision DenseGpu::precision() const { return impl_->precision; }
int64_t DenseGpu::bytes() const {
  return static_cast<int64_t>(impl_->weights.bytes() + impl_->weights16.bytes() + impl_->bias.bytes());
}
double DenseGpu::multiply_adds_per_row() const { return static_cast<double>(impl_->k) * static_cast<double>(impl_->m); }

void DenseGpu::convert_input(const MatrixView& X, uint16_t* converted, StreamView stream) const {
  const Impl& s = *impl_;
  LUTMUL_CHECK(is_16bit(s.precision), "DenseGpu::convert_input: the operator is not bf16 or fp16");
  check_view(X, "X");
  LUTMUL_CHECK(X.cols == s.k, "DenseGpu::convert_input: X must have K = ", s.k, " columns, got ", X.rows, " x ", X.cols);
  if (X.rows == 0) return;
  LUTMUL_CHECK(converted != nullptr, "DenseGpu::convert_input: the output is null");
  const bool row_major = X.layout == Layout::row_major;
  LUTMUL_CUDA_CHECK(kernels::launch_convert_16bit(X.data, X.rows, X.cols, row_major ? X.leading_dim() : 1,
                                                  row_major ? 1 : X.leading_dim(), s.precision == GpuPrecision::bf16,
                                                  converted, native(stream)));
}

void DenseGpu::forward_converted(const uint16_t* converted, int64_t rows, float* Y, int64_t ldy, StreamView stream) const {
  const Impl& s = *impl_;
  LUTMUL_CHECK(is_16bit(s.precision), "DenseGpu::forward_converted: the operator is not bf16 or fp16");
  LUTMUL_CHECK(rows >= 0, "DenseGpu::forward_converted: rows must be ≥ 0, got ", rows);
  LUTMUL_CHECK(ldy >= s.m, "DenseGpu::forward_converted: ldy (", ldy, ") is smaller than M (", s.m, ")");
  if (rows == 0) return;
  LUTMUL_CHECK(converted != nullptr && Y != nullptr, "DenseGpu::forward_converted: X or Y is null");
  LUTMUL_CUDA_CHECK(kernels::launch_fill_rows(Y, rows, s.m, ldy, s.bias.data(), native(stream)));
  s.gemm(converted, s.precision == GpuPrecision::bf16 ? CUDA_R_16BF : CUDA_R_16F, true, s.k, rows, Y, ldy,
         native(stream));
}

void DenseGpu::forward_device(const MatrixView& X, float* Y, int64_t ldy, StreamView stream) const {
  const Impl& s = *impl_;
  check_forward(X, Y, ldy);
  if (X.rows == 0) return;
  if (is_16bit(s.precision)) {
    StreamScratch converted(static_cast<size_t>(X.rows * s.k) * sizeof(uint16_t), native(stream));
    convert_input(X, static_cast<uint16_t*>(converted.get()), stream);
    forward_converted(static_cast<const uint16_t*>(converted.get()), X.rows, Y, ldy, stream);
    return;
  }
  LUTMUL_CUDA_CHECK(kernels::launch_fill_rows(Y, X.rows, s.m, ldy, s.bias.data(), native(stream)));
  s.gemm(X.data, CUDA_R_32F, X.layout == Layout::row_major, X.leading_dim(), X.rows, Y, ldy, native(stream));
}

void DenseGpu::forward(const MatrixView& X, float* Y, int64_t ldy) const {
  check_forward(X, Y, ldy);
  if (X.rows == 0) return;
  detail::forward_through_device(X, impl_->m, Y, ldy, [this](auto&&... args) { forward_device(args...); });
}

}  // namespace lutmul::cuda
