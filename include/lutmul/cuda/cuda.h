// lutmul on NVIDIA GPUs (the optional lutmul_cuda library, CMake option LUTMUL_CUDA):
// MADDNESS encode and scan as CUDA kernels, a fused multi-adapter LoRA kernel, and the exact
// dense and int8 products through cuBLAS and cuBLASLt.
//
//   if (lutmul::cuda::available()) {
//     lutmul::cuda::MaddnessGpu gpu(model);            // a fitted lutmul::Maddness
//     lutmul::cuda::DeviceBuffer<float> a(n * d), y(n * m);
//     a.upload(host_a.data(), n * d);
//     gpu.matmul(lutmul::MatrixView::row_major(a.data(), n, d), y.data(), m);
//     std::vector<float> host_y = y.download();
//   }
//
// Conventions. No CUDA type appears here: streams are passed as StreamView (a cudaStream_t
// in a void*; the default is the legacy default stream). Functions named *_device, and
// encode/scan/matmul/apply, take device pointers in MatrixView and run asynchronously on the
// stream unless they say they synchronise; forward() is the operator contract on host memory
// (copies in, computes, copies out, returns when Y is ready). An object lives on the device
// that was current when it was built; call it with that device current. Const methods are
// safe to call from several threads at once (each call allocates its own scratch, stream
// ordered). Every CUDA, cuBLAS or cuBLASLt failure is thrown as lutmul::Error carrying the
// library's own error text; without a usable GPU, constructors throw and available() is false.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "lutmul/core/error.h"
#include "lutmul/core/matrix.h"
#include "lutmul/operators/linear_operator.h"
#include "lutmul/operators/maddness.h"

namespace lutmul::cuda {

// ---- Devices and errors ----------------------------------------------------------------

// True when a CUDA device is present and can run this build's kernels. Never throws.
bool available();
// Why available() is false ("no CUDA device: <CUDA's error text>", or a device whose
// architecture this build lacks); empty when it is true.
std::string unavailable_reason();
// Name of the current device (e.g. "NVIDIA H100 80GB HBM3"); throws lutmul::Error if none.
std::string device_name();
// Throws lutmul::Error "<what>: <CUDA error name>: <CUDA error text>" unless `status` (a
// cudaError_t value) is cudaSuccess. For callers that mix their own CUDA calls with lutmul's.
void check(int status, const char* what);

// ---- Streams ---------------------------------------------------------------------------

// A non-owning cudaStream_t. The default is the legacy default stream.
class StreamView {
 public:
  StreamView() = default;
  explicit StreamView(void* cuda_stream) : handle_(cuda_stream) {}
  void* handle() const { return handle_; }
  // Blocks until all work queued on the stream is done; throws on an asynchronous error.
  void synchronize() const;

 private:
  void* handle_ = nullptr;
};

// An owned, non-blocking CUDA stream.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(Stream&& other) noexcept : handle_(other.handle_) { other.handle_ = nullptr; }
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  void* handle() const { return handle_; }
  StreamView view() const { return StreamView(handle_); }
  operator StreamView() const { return view(); }  // NOLINT: a Stream is usable wherever a view is
  void synchronize() const { view().synchronize(); }

 private:
  void* handle_ = nullptr;
};

// ---- Device memory ---------------------------------------------------------------------

enum class CopyKind { host_to_device, device_to_host, device_to_device };

namespace detail {
void* device_allocate(size_t bytes);           // cudaMalloc; throws on failure; null for 0 bytes
void device_release(void* pointer) noexcept;   // cudaFree; errors are ignored (destructors)
// Copies and returns when the copy is complete (stream-ordered, then synchronised).
void copy_bytes(void* destination, const void* source, size_t bytes, CopyKind kind, StreamView stream);
void zero_bytes(void* destination, size_t bytes, StreamView stream);  // asynchronous
}  // namespace detail

// A typed device allocation (cudaMalloc), freed on destruction. Move-only. Transfers are
// synchronous with the host; use the stream argument to order them after queued work.
template <typename T>
class DeviceBuffer {
  static_assert(std::is_trivially_copyable<T>::value, "DeviceBuffer holds trivially copyable values");

 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count)
      : data_(static_cast<T*>(detail::device_allocate(count * sizeof(T)))), size_(count) {}
  explicit DeviceBuffer(const std::vector<T>& host, StreamView stream = {}) : DeviceBuffer(host.size()) {
    upload(host.data(), host.size(), stream);
  }
  ~DeviceBuffer() { detail::device_release(data_); }
  DeviceBuffer(DeviceBuffer&& other) noexcept : data_(other.data_), size_(other.size_) {
    other.data_ = nullptr;
    other.size_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      detail::device_release(data_);
      data_ = other.data_;
      size_ = other.size_;
      other.data_ = nullptr;
      other.size_ = 0;
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }

  // Copies `count` ≤ size() values from host memory to the start of the buffer.
  void upload(const T* host, size_t count, StreamView stream = {}) {
    LUTMUL_CHECK(count <= size_, "DeviceBuffer::upload: ", count, " values into a buffer of ", size_);
    detail::copy_bytes(data_, host, count * sizeof(T), CopyKind::host_to_device, stream);
  }
  // Copies the first `count` ≤ size() values to host memory.
  void download(T* host, size_t count, StreamView stream = {}) const {
    LUTMUL_CHECK(count <= size_, "DeviceBuffer::download: ", count, " values from a buffer of ", size_);
    detail::copy_bytes(host, data_, count * sizeof(T), CopyKind::device_to_host, stream);
  }
  std::vector<T> download(StreamView stream = {}) const {
    std::vector<T> host(size_);
    download(host.data(), size_, stream);
    return host;
  }
  // Sets every byte to zero (asynchronous on `stream`).
  void zero(StreamView stream = {}) { detail::zero_bytes(data_, bytes(), stream); }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

// ---- MADDNESS --------------------------------------------------------------------------

// A fitted lutmul::Maddness with weights, on the GPU: split dimensions, thresholds, 8-bit
// tables and output offsets are uploaded once. Codes are the EncodedRows packed layout
// (include/lutmul/operators/maddness.h), byte for byte what the CPU encoder writes, so codes move
// freely between the two; outputs equal the CPU scan's exactly (same integer sums, the
// same two float roundings). The model's accumulation mode (exact or averaged) is used;
// float tables (TableMode::float32) are a CPU measurement aid and are refused.
class MaddnessGpu final : public LinearOperator {
 public:
  explicit MaddnessGpu(const Maddness& model);
  ~MaddnessGpu() override;
  MaddnessGpu(MaddnessGpu&&) noexcept;
  MaddnessGpu& operator=(MaddnessGpu&&) noexcept;

  std::string kind() const override { return "maddness_gpu"; }
  int64_t input_dim() const override;
  int64_t output_dim() const override;
  int ncodebooks() const;
  Accumulation accumulation() const;
  // Bytes of the packed codes of `rows` rows: ceil(rows/64) · ceil(C/2) · 64.
  size_t code_bytes(int64_t rows) const;

  // The operator contract on host memory (synchronous).
  void forward(const MatrixView& X, float* Y, int64_t ldy) const override;
  using LinearOperator::forward;
  int64_t bytes() const override;
  double multiply_adds_per_row() const override;

  // Device A (N × D, row-major or column-major, any leading dimension) to packed codes
  // (code_bytes(N) bytes of device memory, 2-byte aligned: lanes store 16-bit words). With check_nan the call waits for the kernel
  // and throws lutmul::Error if a value the encoder read was NaN; without it the call is
  // asynchronous and a NaN goes left at its node.
  void encode(const MatrixView& A, uint8_t* codes, StreamView stream = {}, bool check_nan = true) const;
  // Device codes of `rows` rows to device Y (rows × M, row-major, ldy ≥ M). Asynchronous.
  void scan(const uint8_t* codes, int64_t rows, float* Y, int64_t ldy, StreamView stream = {}) const;
  // encode then scan, codes in stream-ordered scratch.
  void matmul(const MatrixView& A, float* Y, int64_t ldy, StreamView stream = {}, bool check_nan = true) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- Dense and int8 through NVIDIA's libraries -----------------------------------------

enum class GpuPrecision {
  fp32,  // cuBLAS SGEMM, TF32 off: the exact baseline
  tf32,  // fp32 data, TF32 tensor cores (10-bit mantissa products)
  bf16,  // W and X rounded to bfloat16, tensor cores, fp32 accumulation and output
  fp16,  // the same with IEEE half
};

// Y = X·W + bias through cuBLAS. For bf16/fp16 W is converted once; X is converted on each
// call (or pass it already converted to forward_converted).
class DenseGpu final : public LinearOperator {
 public:
  DenseGpu(const MatrixView& W, const float* bias = nullptr, GpuPrecision precision = GpuPrecision::fp32);
  ~DenseGpu() override;

  std::string kind() const override { return "dense_gpu"; }
  int64_t input_dim() const override;
  int64_t output_dim() const override;
  GpuPrecision precision() const;
  void forward(const MatrixView& X, float* Y, int64_t ldy) const override;
  using LinearOperator::forward;
  int64_t bytes() const override;
  double multiply_adds_per_row() const override;

  // Device X (N × K, either layout) to device Y (N × M row-major). Asynchronous.
  void forward_device(const MatrixView& X, float* Y, int64_t ldy, StreamView stream = {}) const;
  // bf16/fp16 only: X (device, either layout) rounded into `converted` (N × K row-major,
  // packed, 16-bit bit patterns of the operator's precision), and the product from it.
  void convert_input(const MatrixView& X, uint16_t* converted, StreamView stream = {}) const;
  void forward_converted(const uint16_t* converted, int64_t rows, float* Y, int64_t ldy, StreamView stream = {}) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The int8 operator of include/lutmul/operators/int8_linear.h (dynamic per-row activations) on the
// GPU: the same weight quantisation (taken from a CPU Int8Linear), activations quantised by
// a lutmul kernel, the integer product by cuBLASLt (int8 × int8 → int32, tensor cores), and
// the CPU's float epilogue, so Y equals Int8Linear::forward_reference bit for bit.
class Int8Gpu final : public LinearOperator {
 public:
  Int8Gpu(const MatrixView& W, const float* bias = nullptr);
  ~Int8Gpu() override;

  std::string kind() const override { return "int8_gpu"; }
  int64_t input_dim() const override;
  int64_t output_dim() const override;
  void forward(const MatrixView& X, float* Y, int64_t ldy) const override;
  using LinearOperator::forward;
  int64_t bytes() const override;
  double multiply_adds_per_row() const override;

  // Device X (either layout) to device Y. With check_finite the call waits and throws
  // lutmul::Error if X has a NaN or infinity (as the CPU operator does); without it the
  // call is asynchronous and such rows come out undefined.
  void forward_device(const MatrixView& X, float* Y, int64_t ldy, StreamView stream = {}, bool check_finite = true) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- LoRA ------------------------------------------------------------------------------

// One adapter in host memory: A is K × r, B is r × M (any layout), scale = alpha / r.
struct LoraAdapterView {
  MatrixView A;
  MatrixView B;
  float alpha = 1.f;
};

// Many LoRA adapters over one base layer: for each row i of a batch with adapter a = ids[i]
// (−1: none), Y[i] += (alpha_a / r_a)·(X[i]·A_a)·B_a, added in fp32 to a base output the
// caller has already written. apply() groups the rows by adapter on the device and runs one
// shrink (X·A) and one expand (·B) kernel over all adapters at once (segmented, as Punica's
// SGMV); ranks up to kMaxRank.
class LoraGpu {
 public:
  static constexpr int kMaxRank = 256;

  LoraGpu(int64_t input_dim, int64_t output_dim, const std::vector<LoraAdapterView>& adapters);
  ~LoraGpu();
  LoraGpu(LoraGpu&&) noexcept;
  LoraGpu& operator=(LoraGpu&&) noexcept;

  int64_t input_dim() const;
  int64_t output_dim() const;
  int num_adapters() const;
  int rank(int adapter) const;
  int64_t bytes() const;

  // Device X (N × K, either layout), device ids (N int32), device Y (N × M, row-major,
  // ldy ≥ M) updated in place. With check_ids the call waits and throws lutmul::Error for an
  // id outside [−1, num_adapters()); without it the call is asynchronous and such rows are
  // left unchanged.
  void apply(const MatrixView& X, const int32_t* adapter_ids, float* Y, int64_t ldy, StreamView stream = {},
             bool check_ids = true) const;
  // The same result row by row (one thread block per row, plain loops): the reference the
  // grouped kernels are tested against.
  void apply_reference(const MatrixView& X, const int32_t* adapter_ids, float* Y, int64_t ldy,
                       StreamView stream = {}) const;
  // The same result one adapter at a time (gather its rows, two cuBLAS SGEMMs, scatter-add):
  // the baseline the grouped kernels are benchmarked against. Ids are in host memory here.
  void apply_per_adapter(const MatrixView& X, const int32_t* adapter_ids_host, float* Y, int64_t ldy,
                         StreamView stream = {}) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lutmul::cuda
