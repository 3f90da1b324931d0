// A cuBLAS handle shared by the const calls of one operator: each call binds it to its own
// stream and to its own stream-ordered workspace under a lock, so calls from several threads
// on different streams never share a workspace (the lock covers only the enqueueing).
#pragma once

#include <cublas_v2.h>

#include <memory>
#include <mutex>

#include "src/cuda/cuda_check.h"

namespace lutmul::cuda::detail {

class CublasHandle {
 public:
  // 32 MiB: what cuBLAS recommends for Hopper.
  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;

  CublasHandle();
  ~CublasHandle();
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;

  cublasHandle_t get() const { return handle_; }

  // Destroyed in reverse order: the workspace is freed (stream-ordered, after the work just
  // queued) before the lock is released.
  struct Binding {
    std::unique_lock<std::mutex> lock;
    std::unique_ptr<StreamScratch> workspace;
  };
  Binding bind(cudaStream_t stream) const;

 private:
  cublasHandle_t handle_ = nullptr;
  mutable std::mutex mutex_;
};

}  // namespace lutmul::cuda::detail
