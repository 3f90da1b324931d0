// Devices, errors, streams and device memory for lutmul_cuda.
#include <cstdio>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cuda/kernels.h"
#include "src/cuda/cuda_check.h"

namespace lutmul::cuda {
namespace {

struct Availability {
  bool usable = false;
  std::string reason;
};

std::string cuda_text(cudaError_t status) {
  return std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
}

// Asked once per process: a driver or device cannot appear later in a process's life.
const Availability& availability() {
  static const Availability state = [] {
    Availability a;
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
      cudaGetLastError();  // clear it so that it does not surface in a later call
      a.reason = "no CUDA device: " + std::string(cudaGetErrorString(status));
      return a;
    }
    if (count == 0) {
      a.reason = "no CUDA device: cudaGetDeviceCount found none";
      return a;
    }
    status = kernels::probe_kernel_image();
    if (status != cudaSuccess) {
      cudaGetLastError();
      int device = 0;
      cudaDeviceProp properties{};
      std::ostringstream out;
      out << "CUDA device present but unusable by this build (" << cuda_text(status) << ")";
      if (cudaGetDevice(&device) == cudaSuccess && cudaGetDeviceProperties(&properties, device) == cudaSuccess)
        out << ": " << properties.name << " is compute capability " << properties.major << "." << properties.minor;
      a.reason = out.str();
      return a;
    }
    a.usable = true;
    return a;
  }();
  return state;
}

}  // namespace

bool available() {
  try {
    return availability().usable;
  } catch (...) {
    return false;
  }
}

std::string unavailable_reason() { return availability().reason; }

std::string device_name() {
  detail::require_device("device_name");
  int device = 0;
  cudaDeviceProp properties{};
  LUTMUL_CUDA_CHECK(cudaGetDevice(&device));
  LUTMUL_CUDA_CHECK(cudaGetDeviceProperties(&properties, device));
  return properties.name;
}

void check(int status, const char* what) {
  if (status != cudaSuccess) detail::throw_cuda(static_cast<cudaError_t>(status), what, nullptr, 0);
}

void StreamView::synchronize() const { LUTMUL_CUDA_CHECK(cudaStreamSynchronize(detail::native(*this))); }

Stream::Stream() {
  detail::require_device("Stream");
  cudaStream_t stream = nullptr;
  LUTMUL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  handle_ = stream;
}

Stream::~Stream() {
  if (handle_ != nullptr) cudaStreamDestroy(static_cast<cudaStream_t>(handle_));
}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    if (handle_ != nullptr) cudaStreamDestroy(static_cast<cudaStream_t>(handle_));
    handle_ = other.handle_;
    other.handle_ = nullptr;
  }
  return *this;
}

namespace detail {

void throw_cuda(cudaError_t status, const char* what, const char* file, int line) {
  cudaGetLastError();  // a non-sticky error must not be reported again by the next check
  std::ostringstream out;
  out << "CUDA error in " << what;
  if (file != nullptr) out << " (" << file << ":" << line << ")";
  out << ": " << cuda_text(status);
  throw Error(out.str());
}

void throw_cublas(cublasStatus_t status, const char* what, const char* file, int line) {
  std::ostringstream out;
  out << "cuBLAS error in " << what << " (" << file << ":" << line << "): " << cublasGetStatusName(status) << ": "
      << cublasGetStatusString(status);
  throw Error(out.str());
}

void require_device(const char* who) {
  LUTMUL_CHECK(available(), who, ": ", unavailable_reason());
}

const DeviceLimits& current_device_limits() {
  static std::mutex mutex;
  static std::vector<DeviceLimits> cache;
  int device = 0;
  LUTMUL_CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mutex);
  if (cache.size() <= static_cast<size_t>(device)) cache.resize(static_cast<size_t>(device) + 1, DeviceLimits{-1, 1, 0});
  DeviceLimits& limits = cache[static_cast<size_t>(device)];
  if (limits.device < 0) {
    LUTMUL_CUDA_CHECK(cudaDeviceGetAttribute(&limits.multiprocessors, cudaDevAttrMultiProcessorCount, device));
    LUTMUL_CUDA_CHECK(cudaDeviceGetAttribute(&limits.shared_memory_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    limits.device = device;
  }
  return limits;
}

// lutmul's own stream-ordered pool per device: it keeps freed scratch for the next call
// (release threshold: never), where the default pool would hand it back to the driver at
// every synchronisation. It is not the default pool, so other users' memory is untouched.
cudaMemPool_t scratch_pool() {
  static std::mutex mutex;
  static std::vector<cudaMemPool_t> pools;
  int device = 0;
  LUTMUL_CUDA_CHECK(cudaGetDevice(&device));
  const std::lock_guard<std::mutex> lock(mutex);
  if (pools.size() <= static_cast<size_t>(device)) pools.resize(static_cast<size_t>(device) + 1, nullptr);
  cudaMemPool_t& pool = pools[static_cast<size_t>(device)];
  if (pool == nullptr) {
    cudaMemPoolProps properties{};
    properties.allocType = cudaMemAllocationTypePinned;
    properties.location.type = cudaMemLocationTypeDevice;
    properties.location.id = device;
    cudaMemPool_t created = nullptr;
    LUTMUL_CUDA_CHECK(cudaMemPoolCreate(&created, &properties));
    uint64_t keep_all = UINT64_MAX;
    LUTMUL_CUDA_CHECK(cudaMemPoolSetAttribute(created, cudaMemPoolAttrReleaseThreshold, &keep_all));
    pool = created;
  }
  return pool;
}

StreamScratch::StreamScratch(size_t bytes, cudaStream_t stream) : bytes_(bytes), stream_(stream) {
  if (bytes > 0) LUTMUL_CUDA_CHECK(cudaMallocFromPoolAsync(&pointer_, bytes + 256, scratch_pool(), stream));
}

StreamScratch::~StreamScratch() {
  if (pointer_ != nullptr) cudaFreeAsync(pointer_, stream_);
}

int read_flag(const int* device_flag, cudaStream_t stream) {
  int value = 0;
  LUTMUL_CUDA_CHECK(cudaMemcpyAsync(&value, device_flag, sizeof(int), cudaMemcpyDeviceToHost, stream));
  LUTMUL_CUDA_CHECK(cudaStreamSynchronize(stream));
  return value;
}

// Host X (either layout, any leading dimension) to a packed device copy of the same layout.
void upload_matrix(const MatrixView& X, float* device, cudaStream_t stream) {
  const bool row_major = X.layout == Layout::row_major;
  const size_t width = static_cast<size_t>(row_major ? X.cols : X.rows) * sizeof(float);
  const size_t height = static_cast<size_t>(row_major ? X.rows : X.cols);
  LUTMUL_CUDA_CHECK(cudaMemcpy2DAsync(device, width, X.data, static_cast<size_t>(X.leading_dim()) * sizeof(float),
                                      width, height, cudaMemcpyHostToDevice, stream));
}

// Device Y (rows × cols packed) to host Y with leading dimension ldy, then waits.
void download_rows(const float* device, int64_t rows, int64_t cols, float* Y, int64_t ldy, cudaStream_t stream) {
  const size_t width = static_cast<size_t>(cols) * sizeof(float);
  LUTMUL_CUDA_CHECK(cudaMemcpy2DAsync(Y, static_cast<size_t>(ldy) * sizeof(float), device, width, width,
                                      static_cast<size_t>(rows), cudaMemcpyDeviceToHost, stream));
  LUTMUL_CUDA_CHECK(cudaStreamSynchronize(stream));
}

MatrixView packed_like(const MatrixView& X, const float* device) {
  return X.layout == Layout::row_major ? MatrixView::row_major(device, X.rows, X.cols)
                                       : MatrixView::col_major(device, X.rows, X.cols);
}

void* device_allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  require_device("DeviceBuffer");
  void* pointer = nullptr;
  LUTMUL_CUDA_CHECK(cudaMalloc(&pointer, bytes));
  return pointer;
}

void device_release(void* pointer) noexcept {
  if (pointer != nullptr) cudaFree(pointer);
}

void copy_bytes(void* destination, const void* source, size_t bytes, CopyKind kind, StreamView stream) {
  if (bytes == 0) return;
  const cudaMemcpyKind direction = kind == CopyKind::host_to_device   ? cudaMemcpyHostToDevice
                                   : kind == CopyKind::device_to_host ? cudaMemcpyDeviceToHost
                                                                      : cudaMemcpyDeviceToDevice;
  LUTMUL_CUDA_CHECK(cudaMemcpyAsync(destination, source, bytes, direction, native(stream)));
  LUTMUL_CUDA_CHECK(cudaStreamSynchronize(native(stream)));
}

void zero_bytes(void* destination, size_t bytes, StreamView stream) {
  if (bytes == 0) return;
  LUTMUL_CUDA_CHECK(cudaMemsetAsync(destination, 0, bytes, native(stream)));
}

}  // namespace detail
}  // namespace lutmul::cuda
