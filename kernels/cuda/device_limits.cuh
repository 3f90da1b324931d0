// Launch sizing shared by the kernels: how many blocks of a kernel the current device holds
// at once (grid-stride kernels launch no more than that).
#pragma once

#include <cuda_runtime.h>

namespace lutmul::cuda::kernels {

template <typename Kernel>
cudaError_t resident_blocks(Kernel kernel, int threads, size_t shared_bytes, int* blocks) {
  int device = 0, multiprocessors = 0, per_multiprocessor = 0;
  cudaError_t status = cudaGetDevice(&device);
  if (status == cudaSuccess) status = cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device);
  if (status == cudaSuccess)
    status = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_multiprocessor, kernel, threads, shared_bytes);
  if (status != cudaSuccess) return status;
  *blocks = multiprocessors * (per_multiprocessor > 0 ? per_multiprocessor : 1);
  return cudaSuccess;
}

}  // namespace lutmul::cuda::kernels
