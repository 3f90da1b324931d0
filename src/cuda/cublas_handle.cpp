#include "src/cuda/cublas_handle.h"

namespace lutmul::cuda::detail {

CublasHandle::CublasHandle() {
  LUTMUL_CUBLAS_CHECK(cublasCreate(&handle_));
  // The default math mode: no TF32 unless a call asks for it by its compute type.
  const cublasStatus_t status = cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH);
  if (status != CUBLAS_STATUS_SUCCESS) {
    cublasDestroy(handle_);
    throw_cublas(status, "cublasSetMathMode", __FILE__, __LINE__);
  }
}

CublasHandle::~CublasHandle() {
  if (handle_ != nullptr) cublasDestroy(handle_);
}

CublasHandle::Binding CublasHandle::bind(cudaStream_t stream) const {
  Binding binding{std::unique_lock<std::mutex>(mutex_), std::make_unique<StreamScratch>(kWorkspaceBytes, stream)};
  LUTMUL_CUBLAS_CHECK(cublasSetStream(handle_, stream));
  LUTMUL_CUBLAS_CHECK(cublasSetWorkspace(handle_, binding.workspace->carve<char>(kWorkspaceBytes), kWorkspaceBytes));
  return binding;
}

}  // namespace lutmul::cuda::detail
