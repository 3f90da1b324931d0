// Test-only stand-ins for the parts of the CUDA runtime, cuBLAS and cuBLASLt that lutmul_cuda
// calls, for the CPU emulator: one fake device (2 SMs, H100 shared-memory limits), device
// memory in host memory (filled with garbage, leaks reported at exit), every call synchronous.
// The GEMMs are plain loops that check their arguments as the libraries document them
// (leading dimensions, and the "TN" form and multiples of 4 of cuBLASLt's int8 kernels), so
// the host code's calls are checked too; TF32, bf16 and fp16 inputs are rounded like the GPU's.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

namespace emu {

cudaError_t& last_error() {
  static thread_local cudaError_t error = cudaSuccess;  // per host thread, as in CUDA
  return error;
}

namespace {

constexpr int kMultiprocessors = 2;
constexpr int kSharedOptin = 227 * 1024;

std::mutex& mutex() {
  static std::mutex m;
  return m;
}
std::map<const void*, size_t>& allocations() {
  static std::map<const void*, size_t> a;
  return a;
}
std::map<const void*, size_t>& shared_limits() {
  static std::map<const void*, size_t> l;
  return l;
}

void report_leaks() {
  if (!allocations().empty()) {
    std::fprintf(stderr, "CUDA emulator: %zu device allocations were never freed\n", allocations().size());
    std::_Exit(3);
  }
}

cudaError_t allocate(void** p, size_t bytes) {
  if (p == nullptr) return last_error() = cudaErrorInvalidValue;
  if (bytes > (size_t{64} << 30)) return last_error() = cudaErrorMemoryAllocation;  // the fake device has 64 GiB
  static const bool registered = (std::atexit(report_leaks), true);
  (void)registered;
  void* memory = std::malloc(bytes == 0 ? 1 : bytes);
  if (memory == nullptr) return last_error() = cudaErrorMemoryAllocation;
  std::memset(memory, 0xCD, bytes);  // uninitialised device memory is garbage
  const std::lock_guard<std::mutex> lock(mutex());
  allocations()[memory] = bytes;
  *p = memory;
  return cudaSuccess;
}

cudaError_t release(void* p) {
  if (p == nullptr) return cudaSuccess;
  const std::lock_guard<std::mutex> lock(mutex());
  if (allocations().erase(p) == 0) return last_error() = cudaErrorInvalidValue;
  std::free(p);
  return cudaSuccess;
}

}  // namespace

size_t dynamic_shared_limit(const void* kernel) {
  const std::lock_guard<std::mutex> lock(mutex());
  const auto it = shared_limits().find(kernel);
  return it == shared_limits().end() ? 48 * 1024 : it->second;
}

}  // namespace emu

using emu::last_error;

// ---- CUDA runtime ----

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* properties, int) {
  std::memset(properties, 0, sizeof(*properties));
  std::snprintf(properties->name, sizeof(properties->name), "lutmul CPU emulator of a CUDA device");
  properties->major = 9;
  properties->minor = 0;
  properties->multiProcessorCount = emu::kMultiprocessors;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int) {
  switch (attribute) {
    case cudaDevAttrMultiProcessorCount: *value = emu::kMultiprocessors; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = emu::kSharedOptin; break;
    case cudaDevAttrMemoryClockRate: *value = 2619000; break;
    case cudaDevAttrGlobalMemoryBusWidth: *value = 5120; break;
    default: return last_error() = cudaErrorInvalidValue;
  }
  return cudaSuccess;
}
const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidPitchValue: return "cudaErrorInvalidPitchValue";
    default: return "cudaErrorUnknown";
  }
}
const char* cudaGetErrorString(cudaError_t error) {
  return error == cudaSuccess ? "no error" : "error reported by the lutmul CPU emulator";
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = last_error();
  last_error() = cudaSuccess;
  return e;
}
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attributes, const void*) {
  std::memset(attributes, 0, sizeof(*attributes));
  return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute(const void* kernel, cudaFuncAttribute attribute, int value) {
  if (attribute == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > emu::kSharedOptin) return last_error() = cudaErrorInvalidValue;
    const std::lock_guard<std::mutex> lock(emu::mutex());
    emu::shared_limits()[kernel] = static_cast<size_t>(value);
  }
  return cudaSuccess;
}
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, const void*, int threads, size_t shared) {
  if (threads <= 0 || threads > 1024 || shared > static_cast<size_t>(emu::kSharedOptin))
    return last_error() = cudaErrorInvalidValue;
  *blocks = 2;
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
  *stream = reinterpret_cast<cudaStream_t>(new int(0));
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete reinterpret_cast<int*>(stream);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaMalloc(void** p, size_t bytes) { return emu::allocate(p, bytes); }
cudaError_t cudaFree(void* p) { return emu::release(p); }
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) { return emu::allocate(p, bytes); }
cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return emu::release(p); }
cudaError_t cudaMemPoolCreate(cudaMemPool_t* pool, const cudaMemPoolProps* properties) {
  if (properties == nullptr || properties->location.type != cudaMemLocationTypeDevice) return last_error() = cudaErrorInvalidValue;
  *pool = reinterpret_cast<cudaMemPool_t>(new int(0));
  return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr, void* value) {
  return pool == nullptr || value == nullptr ? (last_error() = cudaErrorInvalidValue) : cudaSuccess;
}
cudaError_t cudaMallocFromPoolAsync(void** p, size_t bytes, cudaMemPool_t pool, cudaStream_t) {
  if (pool == nullptr) return last_error() = cudaErrorInvalidValue;
  return emu::allocate(p, bytes);
}
cudaError_t cudaMemcpyAsync(void* destination, const void* source, size_t bytes, cudaMemcpyKind, cudaStream_t) {
  if (bytes > 0 && (destination == nullptr || source == nullptr)) return last_error() = cudaErrorInvalidValue;
  std::memmove(destination, source, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void* destination, size_t destination_pitch, const void* source, size_t source_pitch,
                              size_t width, size_t height, cudaMemcpyKind, cudaStream_t) {
  if (width > destination_pitch || width > source_pitch) return last_error() = cudaErrorInvalidPitchValue;
  for (size_t row = 0; row < height; ++row)
    std::memcpy(static_cast<char*>(destination) + row * destination_pitch,
                static_cast<const char*>(source) + row * source_pitch, width);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* destination, int value, size_t bytes, cudaStream_t) {
  std::memset(destination, value, bytes);
  return cudaSuccess;
}

// ---- cuBLAS ----

struct cublasContext {
  cudaStream_t stream = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

namespace {

float round_mantissa(float x, int dropped_bits) {  // to nearest even, dropping low mantissa bits
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if (std::isnan(x) || std::isinf(x)) return x;
  const uint32_t half = 1u << (dropped_bits - 1);
  u += half - 1 + ((u >> dropped_bits) & 1u);
  u &= ~((1u << dropped_bits) - 1);
  std::memcpy(&x, &u, 4);
  return x;
}

float load(const void* p, cudaDataType type, size_t i) {
  switch (type) {
    case CUDA_R_32F: return static_cast<const float*>(p)[i];
    case CUDA_R_16BF: {
      const uint32_t u = uint32_t{static_cast<const uint16_t*>(p)[i]} << 16;
      float f;
      std::memcpy(&f, &u, 4);
      return f;
    }
    case CUDA_R_16F: {
      _Float16 h;
      std::memcpy(&h, static_cast<const uint16_t*>(p) + i, 2);
      return static_cast<float>(h);
    }
    default: std::fprintf(stderr, "fake cuBLAS: unsupported type\n"); std::abort();
  }
}

// Column-major C (m × n) = alpha·op(A)·op(B) + beta·C with the documented leading-dimension rules.
cublasStatus_t gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const void* a,
                    cudaDataType at, int lda, const void* b, cudaDataType bt, int ldb, float beta, float* c, int ldc,
                    bool tf32) {
  if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const int a_rows = ta == CUBLAS_OP_N ? m : k, b_rows = tb == CUBLAS_OP_N ? k : n;
  if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m)) return CUBLAS_STATUS_INVALID_VALUE;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      double sum = 0;
      for (int p = 0; p < k; ++p) {
        float x = load(a, at, ta == CUBLAS_OP_N ? static_cast<size_t>(i) + static_cast<size_t>(p) * lda
                                                : static_cast<size_t>(p) + static_cast<size_t>(i) * lda);
        float y = load(b, bt, tb == CUBLAS_OP_N ? static_cast<size_t>(p) + static_cast<size_t>(j) * ldb
                                                : static_cast<size_t>(j) + static_cast<size_t>(p) * ldb);
        if (tf32) {
          x = round_mantissa(x, 13);
          y = round_mantissa(y, 13);
        }
        sum += double{x} * y;
      }
      float& out = c[static_cast<size_t>(i) + static_cast<size_t>(j) * ldc];
      out = static_cast<float>(alpha * sum + (beta == 0.f ? 0.0 : double{beta} * out));
    }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void* workspace, size_t bytes) {
  if (bytes > 0 && workspace == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  handle->workspace = workspace;
  handle->workspace_bytes = bytes;
  return CUBLAS_STATUS_SUCCESS;
}
const char* cublasGetStatusName(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_INVALID_VALUE";
}
const char* cublasGetStatusString(cublasStatus_t) { return "reported by the fake cuBLAS of the CPU emulator"; }

cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t) {
  if (Ctype != CUDA_R_32F || Atype != Btype) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (computeType != CUBLAS_COMPUTE_32F && computeType != CUBLAS_COMPUTE_32F_FAST_TF32) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (computeType == CUBLAS_COMPUTE_32F_FAST_TF32 && Atype != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  return gemm(transa, transb, m, n, k, *static_cast<const float*>(alpha), A, Atype, lda, B, Btype, ldb,
              *static_cast<const float*>(beta), static_cast<float*>(C), ldc, computeType == CUBLAS_COMPUTE_32F_FAST_TF32);
}

cublasStatus_t cublasSgemm(cublasHandle_t, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                           const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                           float* C, int ldc) {
  return gemm(transa, transb, m, n, k, *alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, *beta, C, ldc, false);
}

// ---- cuBLASLt ----

struct cublasLtContext {};

namespace {
struct Desc {  // stored in cublasLtMatmulDescOpaque_t::data
  uint64_t compute, scale, transa, transb;
};
struct LayoutFields {  // stored in cublasLtMatrixLayoutOpaque_t::data
  uint64_t type, rows, cols;
  int64_t ld;
};
template <typename T, typename Opaque>
T& fields(Opaque* o) {
  static_assert(sizeof(T) <= sizeof(Opaque), "fits");
  return *reinterpret_cast<T*>(o->data);
}
}  // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  *handle = new cublasLtContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute, cudaDataType_t scale) {
  *desc = new cublasLtMatmulDescOpaque_t{};
  fields<Desc>(*desc) = Desc{static_cast<uint64_t>(compute), static_cast<uint64_t>(scale), CUBLAS_OP_N, CUBLAS_OP_N};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete desc;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute,
                                              const void* buffer, size_t bytes) {
  if (bytes != sizeof(cublasOperation_t)) return CUBLAS_STATUS_INVALID_VALUE;
  const auto op = static_cast<uint64_t>(*static_cast<const cublasOperation_t*>(buffer));
  if (attribute == CUBLASLT_MATMUL_DESC_TRANSA) fields<Desc>(desc).transa = op;
  else if (attribute == CUBLASLT_MATMUL_DESC_TRANSB) fields<Desc>(desc).transb = op;
  else return CUBLAS_STATUS_NOT_SUPPORTED;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
  if (ld < static_cast<int64_t>(rows)) return CUBLAS_STATUS_INVALID_VALUE;
  *layout = new cublasLtMatrixLayoutOpaque_t{};
  fields<LayoutFields>(*layout) = LayoutFields{static_cast<uint64_t>(type), rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete layout;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* preference) {
  *preference = new cublasLtMatmulPreferenceOpaque_t{};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t preference) {
  delete preference;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t, cublasLtMatmulPreferenceAttributes_t,
                                                    const void*, size_t) {
  return CUBLAS_STATUS_SUCCESS;
}

namespace {
// The shapes and the int8 (IMMA) rules of the documentation, regular (column) ordering.
bool int8_call_is_valid(const Desc& d, const LayoutFields& a, const LayoutFields& b, const LayoutFields& c) {
  const uint64_t m = d.transa == CUBLAS_OP_N ? a.rows : a.cols, k = d.transa == CUBLAS_OP_N ? a.cols : a.rows;
  const uint64_t kb = d.transb == CUBLAS_OP_N ? b.rows : b.cols, n = d.transb == CUBLAS_OP_N ? b.cols : b.rows;
  return a.type == CUDA_R_8I && b.type == CUDA_R_8I && c.type == CUDA_R_32I && d.compute == CUBLAS_COMPUTE_32I &&
         d.scale == CUDA_R_32I && d.transa == CUBLAS_OP_T && d.transb == CUBLAS_OP_N && k == kb && c.rows == m &&
         c.cols == n && m % 4 == 0 && k % 4 == 0 && a.ld % 4 == 0 && b.ld % 4 == 0 && c.ld % 4 == 0;
}
}  // namespace

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t,
                                              cublasLtMatmulPreference_t, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* count) {
  *count = 0;
  if (requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
  if (!int8_call_is_valid(fields<Desc>(desc), fields<LayoutFields>(a), fields<LayoutFields>(b), fields<LayoutFields>(c)))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  results[0] = cublasLtMatmulHeuristicResult_t{};
  results[0].state = CUBLAS_STATUS_SUCCESS;
  *count = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t a_layout, const void* B, cublasLtMatrixLayout_t b_layout,
                              const void* beta, const void* C, cublasLtMatrixLayout_t c_layout, void* D,
                              cublasLtMatrixLayout_t d_layout, const cublasLtMatmulAlgo_t* algo, void* workspace,
                              size_t workspace_bytes, cudaStream_t) {
  const Desc& d = fields<Desc>(desc);
  const LayoutFields &a = fields<LayoutFields>(a_layout), &b = fields<LayoutFields>(b_layout),
                     &c = fields<LayoutFields>(c_layout), &dl = fields<LayoutFields>(d_layout);
  if (algo == nullptr || (workspace_bytes > 0 && workspace == nullptr)) return CUBLAS_STATUS_INVALID_VALUE;
  if (!int8_call_is_valid(d, a, b, c) || dl.rows != c.rows || dl.cols != c.cols) return CUBLAS_STATUS_NOT_SUPPORTED;
  const int32_t scale_a = *static_cast<const int32_t*>(alpha), scale_b = *static_cast<const int32_t*>(beta);
  const auto* x = static_cast<const int8_t*>(A);
  const auto* y = static_cast<const int8_t*>(B);
  const auto* in = static_cast<const int32_t*>(C);
  auto* out = static_cast<int32_t*>(D);
  for (uint64_t j = 0; j < c.cols; ++j)
    for (uint64_t i = 0; i < c.rows; ++i) {
      int64_t sum = 0;
      for (uint64_t p = 0; p < a.rows; ++p)  // op(A) = Aᵀ: A is k × m
        sum += int64_t{x[p + i * static_cast<uint64_t>(a.ld)]} * y[p + j * static_cast<uint64_t>(b.ld)];
      const int64_t previous = scale_b == 0 ? 0 : int64_t{in[i + j * static_cast<uint64_t>(c.ld)]} * scale_b;
      out[i + j * static_cast<uint64_t>(dl.ld)] = static_cast<int32_t>(sum * scale_a + previous);
    }
  return CUBLAS_STATUS_SUCCESS;
}
