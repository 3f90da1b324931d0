#include "lutmul/operators/bf16_linear.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/file_format.h"
#include "core/kernel_registry.h"
#include "core/sgemm.h"
#include "kernels/cpu/runtime/runtime_kernels.h"
#include "lutmul/core/error.h"
#include "lutmul/core/threading.h"
#include "operators/bf16_onednn.h"
#include "operators/operator_skeleton.h"

namespace lutmul {

uint16_t to_bfloat16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return kernels::round_to_bf16_bits(bits);
}

float from_bfloat16(uint16_t bits) {
  const uint32_t wide = uint32_t{bits} << 16;
  float x;
  std::memcpy(&x, &wide, sizeof x);
  return x;
}

namespace detail {
namespace {

// Rows [first, first + count) of X rounded to bfloat16 into a dense count × K buffer, by the
// active ISA's kernel where rows are contiguous. Returns whether every value was finite.
bool round_rows(const MatrixView& X, int64_t first, int64_t count, uint16_t* out) {
  const int64_t k = X.cols;
  const kernels::RoundBf16Fn round = active_kernels().runtime.round_bf16;
  bool finite = true;
  for (int64_t i = first; i < first + count; ++i) {
    uint16_t* row = out + (i - first) * k;
    if (X.layout == Layout::row_major) {
      finite = round(X.data + i * X.leading_dim(), k, row) && finite;
    } else {
      for (int64_t j = 0; j < k; ++j) {
        row[j] = to_bfloat16(X.at(i, j));
        finite = finite && std::isfinite(X.at(i, j));
      }
    }
  }
  return finite;
}

}  // namespace

}  // namespace detail

Bf16Linear::Bf16Linear(const MatrixView& W, const float* bias) : SizedLinearOperator("bf16") {
  detail::check_weights(W, "Bf16Linear");
  k_ = W.rows;
  m_ = W.cols;
  weights_.resize(static_cast<size_t>(k_ * m_));
  for (int64_t i = 0; i < k_; ++i)
    for (int64_t j = 0; j < m_; ++j) weights_[i * m_ + j] = to_bfloat16(W.at(i, j));
  bias_ = detail::copy_bias(bias, m_, "Bf16Linear");
  prepare();
}

void Bf16Linear::prepare() {
  try {
    product_ = std::make_shared<const detail::Bf16OnednnProduct>(k_, m_, weights_.data());
  } catch (const dnnl::error&) {
    // oneDNN has no bfloat16 product for this CPU (one without AVX-512): the same values
    // through the f32 product.
    product_.reset();
    fallback_weights_.resize(weights_.size());
    for (size_t i = 0; i < weights_.size(); ++i) fallback_weights_[i] = from_bfloat16(weights_[i]);
  }
}

// Only where AMX blocks run, the path measured (Sapphire Rapids); oneDNN's gemm:jit alone
// (Zen 4) keeps the separate pass.
bool Bf16Linear::fuses_epilogue() const { return product_ != nullptr && product_->has_blocks(); }

std::string Bf16Linear::path() const {
  return product_ ? "oneDNN " + product_->implementation() : std::string("f32 product of bfloat16 values");
}

void Bf16Linear::compute(const MatrixView& X, float* Y, int64_t ldy) const { compute_with(X, Y, ldy, Epilogue{}); }

void Bf16Linear::forward_fused(const MatrixView& X, float* Y, int64_t ldy, const Epilogue& epilogue) const {
  check_forward(X, Y, ldy);
  if (X.rows > 0) compute_with(X, Y, ldy, epilogue);
}

void Bf16Linear::compute_with(const MatrixView& X, float* Y, int64_t ldy, const Epilogue& epilogue) const {
  const int threads = num_threads();
  int64_t done = 0;
  if (product_ && product_->has_blocks() && ldy == m_) {
    // AMX: whole blocks, each rounded into a buffer its thread keeps and multiplied on that
    // thread while its rows are still in L2.
    const auto blocks = detail::fixed_row_blocks(X.rows, threads, detail::Bf16OnednnProduct::kBlockRows, done);
    const int parts = static_cast<int>(std::min<int64_t>(threads, static_cast<int64_t>(blocks.size())));
    const bool finite = detail::run_on_threads(parts, [&](int thread, int count) {
      thread_local std::vector<uint16_t> buffer;
      buffer.resize(static_cast<size_t>(detail::Bf16OnednnProduct::kBlockRows[0] * k_));
      bool ok = true;
      for (size_t b = static_cast<size_t>(thread); b < blocks.size() && ok; b += static_cast<size_t>(count)) {
        const auto [first, rows] = blocks[b];
        ok = detail::round_rows(X, first, rows, buffer.data());
        if (ok) product_->run_block(buffer.data(), rows, weights_.data(), bias_.data(), Y + first * ldy, epilogue);
      }
      return ok;
    });
    if (!finite) detail::check_rows_finite(X, nullptr, "bf16");  // throws, naming the row
  }
  if (done == X.rows) return;
  // The rest (all rows without AMX blocks): rounded first, then one product, the path
  // measured on Zen 4 (docs/performance.md).
  const int64_t rows = X.rows - done;
  std::vector<uint16_t> x(static_cast<size_t>(rows * k_));
  const int parts = static_cast<int>(std::min<int64_t>(threads, rows));
  const bool finite = detail::run_on_threads(parts, [&](int thread, int count) {
    bool ok = true;
    for (int p = thread; p < parts; p += count) {
      const auto [begin, end] = detail::partition(rows, parts, p);
      ok = detail::round_rows(X, done + begin, end - begin, x.data() + begin * k_) && ok;
    }
    return ok;
  });
  if (!finite) detail::check_rows_finite(X, nullptr, "bf16");
  float* y = Y + done * ldy;
  if (product_) {
    product_->run(x.data(), rows, weights_.data(), bias_.data(), y, ldy, threads, epilogue);
  } else {
    std::vector<float> rounded(static_cast<size_t>(rows * k_));
    for (size_t i = 0; i < rounded.size(); ++i) rounded[i] = from_bfloat16(x[i]);
    detail::fill_rows_on_threads(y, ldy, rows, bias_.data(), m_, threads);
    detail::sgemm(false, false, rows, m_, k_, rounded.data(), k_, fallback_weights_.data(), m_, 1.f, y, ldy, threads);
  }
}

int64_t Bf16Linear::bytes() const {
  return static_cast<int64_t>(weights_.size() * sizeof(uint16_t) + bias_.size() * sizeof(float));
}

std::vector<uint8_t> Bf16Linear::payload() const {
  return detail::pack(k_, m_, weights_, bias_);
}

std::unique_ptr<Bf16Linear> Bf16Linear::from_payload(const uint8_t* data, size_t size) {
  detail::ByteReader r(data, size, "operator file");
  const auto [k, m] = detail::read_dims(r, "bf16");
  std::unique_ptr<Bf16Linear> op(new Bf16Linear());
  op->k_ = k;
  op->m_ = m;
  op->weights_ = r.get_array<uint16_t>("weights", static_cast<uint64_t>(k) * static_cast<uint64_t>(m));
  op->bias_ = r.get_array<float>("bias", static_cast<uint64_t>(m));
  LUTMUL_CHECK(r.done(), "operator file is corrupt: unexpected bytes after the bf16 weights");
  for (const uint16_t w : op->weights_)
    LUTMUL_CHECK(std::isfinite(from_bfloat16(w)), "operator file is corrupt: a bf16 weight is not finite");
  detail::check_all_finite(op->bias_, "bias", "operator file");
  op->prepare();
  return op;
}

}  // namespace lutmul
