// Internal helpers of lutmul_cuda's host code: CUDA, cuBLAS and cuBLASLt statuses turned
// into lutmul::Error, stream-ordered scratch memory, the device a call runs on.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "lutmul/core/error.h"
#include "lutmul/cuda/cuda.h"

namespace lutmul::cuda::detail {

[[noreturn]] void throw_cuda(cudaError_t status, const char* what, const char* file, int line);
[[noreturn]] void throw_cublas(cublasStatus_t status, const char* what, const char* file, int line);

inline cudaStream_t native(StreamView stream) { return static_cast<cudaStream_t>(stream.handle()); }

// Throws lutmul::Error naming the operator unless a usable device is present.
void require_device(const char* who);

// Device attributes of the current device (cached per device).
struct DeviceLimits {
  int device = 0;
  int multiprocessors = 1;
  int shared_memory_optin = 48 * 1024;  // bytes per block with the opt-in attribute
};
const DeviceLimits& current_device_limits();

// Device memory allocated and freed in stream order (cudaMallocAsync / cudaFreeAsync): a
// call's scratch, safe when several calls on different streams run at once.
class StreamScratch {
 public:
  StreamScratch(size_t bytes, cudaStream_t stream);
  ~StreamScratch();
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
  void* get() const { return pointer_; }
  // A 256-byte aligned region at a running offset (carves several arrays out of one; the
  // allocation has 256 spare bytes, so the first region is aligned whatever the pool gave).
  template <typename T>
  T* carve(size_t count) {
    const auto base = reinterpret_cast<uintptr_t>(pointer_);
    const uintptr_t begin = (base + used_ + 255) / 256 * 256;
    used_ = static_cast<size_t>(begin - base) + count * sizeof(T);
    LUTMUL_CHECK(used_ <= bytes_ + 256, "internal: scratch of ", bytes_, " bytes is too small");
    return reinterpret_cast<T*>(begin);
  }
  // Bytes to ask for an array that is carved: its size rounded up to 256.
  static size_t aligned(size_t bytes) { return (bytes + 255) / 256 * 256; }

 private:
  void* pointer_ = nullptr;
  size_t bytes_ = 0;
  size_t used_ = 0;
  cudaStream_t stream_;
};

// Copies a one-int flag back, waits for the stream, and returns it.
int read_flag(const int* device_flag, cudaStream_t stream);

// The host side of the operator contract: host X (either layout, any leading dimension) to
// a packed device copy of the same layout, described by packed_like; device rows back to
// host Y (leading dimension ldy), then a wait for the stream.
void upload_matrix(const MatrixView& X, float* device, cudaStream_t stream);
MatrixView packed_like(const MatrixView& X, const float* device);
void download_rows(const float* device, int64_t rows, int64_t cols, float* Y, int64_t ldy, cudaStream_t stream);

// A GPU operator's host forward, written once: host X to the device, run(X on the device,
// Y on the device, M, stream), Y back to the host. X is checked and non-empty.
template <class RunOnDevice>
void forward_through_device(const MatrixView& X, int64_t m, float* Y, int64_t ldy, RunOnDevice&& run) {
  const cudaStream_t stream = nullptr;
  StreamScratch x(static_cast<size_t>(X.rows * X.cols) * sizeof(float), stream);
  StreamScratch y(static_cast<size_t>(X.rows * m) * sizeof(float), stream);
  upload_matrix(X, static_cast<float*>(x.get()), stream);
  run(packed_like(X, static_cast<const float*>(x.get())), static_cast<float*>(y.get()), m, StreamView(stream));
  download_rows(static_cast<const float*>(y.get()), X.rows, m, Y, ldy, stream);
}

}  // namespace lutmul::cuda::detail

#define LUTMUL_CUDA_CHECK(expression)                                                          \
  do {                                                                                         \
    const cudaError_t lutmul_cuda_status_ = (expression);                                      \
    if (lutmul_cuda_status_ != cudaSuccess)                                                    \
      ::lutmul::cuda::detail::throw_cuda(lutmul_cuda_status_, #expression, __FILE__, __LINE__); \
  } while (0)

#define LUTMUL_CUBLAS_CHECK(expression)                                                          \
  do {                                                                                           \
    const cublasStatus_t lutmul_cublas_status_ = (expression);                                   \
    if (lutmul_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                          \
      ::lutmul::cuda::detail::throw_cublas(lutmul_cublas_status_, #expression, __FILE__, __LINE__); \
  } while (0)
