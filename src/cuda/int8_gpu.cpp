// Int8Gpu: Int8Linear's quantisation, the integer product through cuBLASLt, the CPU epilogue.
#include <climits>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/cuda/kernels.h"
#include "lutmul/operators/int8_linear.h"
#include "src/cuda/cuda_check.h"

namespace lutmul::cuda {

using detail::native;
using detail::StreamScratch;

namespace {

// K and M padded to 16: cuBLASLt's int8 (IMMA) kernels want dimensions and leading
// dimensions that are multiples of 4 and rows that start 16-byte aligned.
constexpr int64_t kPad = 16;
int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

struct LtDeleter {
  void operator()(cublasLtMatmulDescOpaque_t* d) const { cublasLtMatmulDescDestroy(d); }
  void operator()(cublasLtMatrixLayoutOpaque_t* l) const { cublasLtMatrixLayoutDestroy(l); }
  void operator()(cublasLtMatmulPreferenceOpaque_t* p) const { cublasLtMatmulPreferenceDestroy(p); }
};
using MatmulDesc = std::unique_ptr<cublasLtMatmulDescOpaque_t, LtDeleter>;
using LtLayout = std::unique_ptr<cublasLtMatrixLayoutOpaque_t, LtDeleter>;
using Preference = std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, LtDeleter>;

LtLayout make_layout(cudaDataType type, int64_t rows, int64_t cols, int64_t ld) {
  cublasLtMatrixLayout_t layout = nullptr;
  LUTMUL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
  return LtLayout(layout);
}

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

}  // namespace

struct Int8Gpu::Impl {
  int64_t k = 0, m = 0, k_padded = 0, m_padded = 0;
  DeviceBuffer<int8_t> weights;  // M_pad × K_pad row-major: row m is output m's w_q
  DeviceBuffer<float> weight_scales, bias;
  cublasLtHandle_t lt = nullptr;
  MatmulDesc matmul;
  LtLayout weight_layout;
  mutable std::mutex mutex;
  mutable std::map<int64_t, std::optional<cublasLtMatmulAlgo_t>> algorithms;  // by N

  ~Impl() {
    if (lt != nullptr) cublasLtDestroy(lt);
  }

  // The heuristic's best algorithm for N rows, asked once per N; none where cuBLASLt has no
  // int8 algorithm for the shape (then lutmul's own __dp4a kernel runs).
  std::optional<cublasLtMatmulAlgo_t> algorithm(int64_t rows, cublasLtMatrixLayout_t x_layout,
                                                cublasLtMatrixLayout_t acc_layout) const {
    const std::lock_guard<std::mutex> lock(mutex);
    const auto found = algorithms.find(rows);
    if (found != algorithms.end()) return found->second;
    cublasLtMatmulPreference_t raw = nullptr;
    LUTMUL_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&raw));
    const Preference preference(raw);
    const uint64_t workspace = kWorkspaceBytes;
    LUTMUL_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(raw, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                             sizeof(workspace)));
    cublasLtMatmulHeuristicResult_t result{};
    int count = 0;
    const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(lt, matmul.get(), weight_layout.get(), x_layout,
                                                                  acc_layout, acc_layout, raw, 1, &result, &count);
    if (status != CUBLAS_STATUS_SUCCESS && status != CUBLAS_STATUS_NOT_SUPPORTED)
      detail::throw_cublas(status, "cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__);
    std::optional<cublasLtMatmulAlgo_t> chosen;
    if (status == CUBLAS_STATUS_SUCCESS && count > 0) chosen = result.algo;
    if (algorithms.size() >= 256) algorithms.clear();  // many distinct N: keep the cache small
    algorithms.emplace(rows, chosen);
    return chosen;
  }
};

Int8Gpu::Int8Gpu(const MatrixView& W, const float* bias)
    : impl_((detail::require_device("Int8Gpu"), std::make_unique<Impl>())) {
  // (The device check runs before Impl exists: without a device no library handle is made.)
  const Int8Linear cpu(W, bias);  // checks W and bias; defines the quantisation
  Impl& s = *impl_;
  s.k = cpu.input_dim();
  s.m = cpu.output_dim();
  LUTMUL_CHECK(s.k <= INT_MAX / 2 && s.m <= INT_MAX / 2, "Int8Gpu: W is too large (", s.k, " x ", s.m, ")");
  s.k_padded = round_up(s.k, kPad);
  s.m_padded = round_up(s.m, kPad);
  std::vector<int8_t> weights(static_cast<size_t>(s.m_padded * s.k_padded), 0);
  std::vector<float> scales(static_cast<size_t>(s.m)), b(static_cast<size_t>(s.m), 0.f);
  for (int64_t j = 0; j < s.m; ++j) {
    scales[static_cast<size_t>(j)] = cpu.weight_scale(j);
    for (int64_t i = 0; i < s.k; ++i) weights[static_cast<size_t>(j * s.k_padded + i)] = cpu.quantized_weight(i, j);
    if (bias != nullptr) b[static_cast<size_t>(j)] = bias[j];
  }
  s.weights = DeviceBuffer<int8_t>(weights);
  s.weight_scales = DeviceBuffer<float>(scales);
  s.bias = DeviceBuffer<float>(b);

  LUTMUL_CUBLAS_CHECK(cublasLtCreate(&s.lt));
  cublasLtMatmulDesc_t desc = nullptr;
  LUTMUL_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32I, CUDA_R_32I));
  s.matmul.reset(desc);
  // Column-major Accᵀ (M × N) = Wq (stored K × M, transposed) · Xqᵀ (stored K × N): the
  // "TN" form the int8 kernels require; in row-major terms Acc (N × M) = Xq · Wqᵀ.
  const cublasOperation_t transpose = CUBLAS_OP_T, none = CUBLAS_OP_N;
  LUTMUL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose)));
  LUTMUL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof(none)));
  s.weight_layout = make_layout(CUDA_R_8I, s.k_padded, s.m_padded, s.k_padded);
}

Int8Gpu::~Int8Gpu() = default;

int64_t Int8Gpu::input_dim() const { return impl_->k; }
int64_t Int8Gpu::output_dim() const { return impl_->m; }
int64_t Int8Gpu::bytes() const {
  return static_cast<int64_t>(impl_->weights.bytes() + impl_->weight_scales.bytes() + impl_->bias.bytes());
}
double Int8Gpu::multiply_adds_per_row() const { return static_cast<double>(impl_->k) * static_cast<double>(impl_->m); }

void Int8Gpu::forward_device(const MatrixView& X, float* Y, int64_t ldy, StreamView stream, bool check_finite) const {
  const Impl& s = *impl_;
  check_forward(X, Y, ldy);
  if (X.rows == 0) return;
  LUTMUL_CHECK(X.rows <= INT_MAX, "Int8Gpu: at most 2^31 - 1 rows per call, got ", X.rows);
  const cudaStream_t st = native(stream);
  const size_t quantized_bytes = static_cast<size_t>(X.rows * s.k_padded);
  const size_t scale_bytes = static_cast<size_t>(X.rows) * sizeof(float);
  const size_t acc_bytes = static_cast<size_t>(X.rows * s.m_padded) * sizeof(int32_t);
  StreamScratch scratch(StreamScratch::aligned(quantized_bytes) + StreamScratch::aligned(scale_bytes) +
                            StreamScratch::aligned(acc_bytes) + StreamScratch::aligned(sizeof(int)) + kWorkspaceBytes,
                        st);
  auto* quantized = scratch.carve<int8_t>(quantized_bytes);
  auto* row_scales = scratch.carve<float>(static_cast<size_t>(X.rows));
  auto* acc = scratch.carve<int32_t>(static_cast<size_t>(X.rows * s.m_padded));
  auto* flag = scratch.carve<int>(1);
  auto* workspace = scratch.carve<char>(kWorkspaceBytes);
  if (check_finite) LUTMUL_CUDA_CHECK(cudaMemsetAsync(flag, 0, sizeof(int), st));

  const bool row_major = X.layout == Layout::row_major;
  LUTMUL_CUDA_CHECK(kernels::launch_quantize_rows(X.data, X.rows, s.k, row_major ? X.leading_dim() : 1,
                                                  row_major ? 1 : X.leading_dim(), s.k_padded, quantized, row_scales,
                                                  check_finite ? flag : nullptr, st));
  const LtLayout x_layout = make_layout(CUDA_R_8I, s.k_padded, X.rows, s.k_padded);
  const LtLayout acc_layout = make_layout(CUDA_R_32I, s.m_padded, X.rows, s.m_padded);
  // LUTMUL_CUDA_INT8_GEMM=fallback forces lutmul's own kernel (the tests run both paths).
  const char* forced = std::getenv("LUTMUL_CUDA_INT8_GEMM");
  const bool fallback_forced = forced != nullptr && std::strcmp(forced, "fallback") == 0;
  const std::optional<cublasLtMatmulAlgo_t> algorithm =
      fallback_forced ? std::nullopt : s.algorithm(X.rows, x_layout.get(), acc_layout.get());
  if (algorithm) {
    const int32_t one = 1, zero = 0;
    LUTMUL_CUBLAS_CHECK(cublasLtMatmul(s.lt, s.matmul.get(), &one, s.weights.data(), s.weight_layout.get(), quantized,
                                       x_layout.get(), &zero, acc, acc_layout.get(), acc, acc_layout.get(),
                                       &*algorithm, workspace, kWorkspaceBytes, st));
  } else {
    LUTMUL_CUDA_CHECK(kernels::launch_int8_gemm(quantized, s.weights.data(), X.rows, s.k_padded, s.m_padded, acc, st));
  }
  LUTMUL_CUDA_CHECK(kernels::launch_int8_epilogue(acc, s.m_padded, X.rows, s.m, row_scales, s.weight_scales.data(),
                                                  s.bias.data(), Y, ldy, st));
  if (check_finite)
    LUTMUL_CHECK(detail::read_flag(flag, st) == 0, "Int8Gpu forward: X has a non-finite value (", X.rows, " x ",
                 X.cols, " input)");
}

void Int8Gpu::forward(const MatrixView& X, float* Y, int64_t ldy) const {
  check_forward(X, Y, ldy);
  if (X.rows == 0) return;
  detail::forward_through_device(X, impl_->m, Y, ldy, [this](auto&&... args) { forward_device(args...); });
}

}  // namespace lutmul::cuda
