#include "lutmul/operators/bf16_linear.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <cmath>
#include <cstring>

#include "core/file_format.h"
#include "core/onednn_engine.h"
#include "core/sgemm.h"
#include "lutmul/core/error.h"
#include "lutmul/core/threading.h"
#include "operators/operator_skeleton.h"

namespace lutmul {

uint16_t to_bfloat16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if (std::isnan(x)) return static_cast<uint16_t>((bits >> 16) | 0x40);  // stays a (quiet) NaN
  bits += 0x7fff + ((bits >> 16) & 1);  // round to nearest, ties to even
  return static_cast<uint16_t>(bits >> 16);
}

float from_bfloat16(uint16_t bits) {
  const uint32_t wide = uint32_t{bits} << 16;
  float x;
  std::memcpy(&x, &wide, sizeof x);
  return x;
}

namespace detail {
namespace {

// Rows of X rounded to bfloat16 into a dense N × K buffer: plain integer arithmetic on the
// float bits, which the compiler vectorises. A NaN is kept a NaN (rounding its bits could
// carry into the sign and make it zero), so the check of Y afterwards finds it.
void round_rows(const MatrixView& X, int64_t first, int64_t count, uint16_t* out) {
  const int64_t k = X.cols;
  for (int64_t i = first; i < first + count; ++i) {
    uint16_t* row = out + i * k;
    if (X.layout == Layout::row_major) {
      const auto* bits = reinterpret_cast<const uint32_t*>(X.data + i * X.leading_dim());
      for (int64_t j = 0; j < k; ++j) {
        const uint32_t b = bits[j];
        const uint32_t rounded = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
        row[j] = static_cast<uint16_t>((b & 0x7fffffffu) > 0x7f800000u ? (b >> 16) | 0x40u : rounded);
      }
    } else {
      for (int64_t j = 0; j < k; ++j) row[j] = to_bfloat16(X.at(i, j));
    }
  }
}

}  // namespace

// One oneDNN matmul primitive for every row count (a run-time M and leading dimension of Y),
// created once with the operator: bfloat16 X and W, float bias and Y. Scratchpad memory is
// the caller's, so concurrent forward calls on one operator share nothing mutable.
class Bf16Product {
 public:
  Bf16Product(int64_t k, int64_t m) {
    using dnnl::memory;
    const memory::dim rt = DNNL_RUNTIME_DIM_VAL;
    const memory::desc src({rt, k}, memory::data_type::bf16, memory::dims{k, 1});
    const memory::desc weights({k, m}, memory::data_type::bf16, memory::format_tag::ab);
    const memory::desc bias({1, m}, memory::data_type::f32, memory::format_tag::ab);
    const memory::desc dst({rt, m}, memory::data_type::f32, memory::dims{rt, 1});
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    pd_ = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, bias, dst), attr, onednn_cpu_engine());
    primitive_ = dnnl::matmul(pd_);
  }

  std::string implementation() const { return pd_.impl_info_str(); }

  void run(const uint16_t* x, int64_t n, int64_t k, const uint16_t* w, const float* bias, float* y, int64_t m,
           int64_t ldy) const {
    using dnnl::memory;
    const dnnl::engine& engine = onednn_cpu_engine();
    const memory src({{n, k}, memory::data_type::bf16, memory::dims{k, 1}}, engine, const_cast<uint16_t*>(x));
    const memory weights({{k, m}, memory::data_type::bf16, memory::format_tag::ab}, engine, const_cast<uint16_t*>(w));
    const memory b({{1, m}, memory::data_type::f32, memory::format_tag::ab}, engine, const_cast<float*>(bias));
    const memory dst({{n, m}, memory::data_type::f32, memory::dims{ldy, 1}}, engine, y);
    std::vector<uint8_t> scratch(pd_.scratchpad_desc().get_size());
    const memory scratchpad(pd_.scratchpad_desc(), engine, scratch.data());
    dnnl::stream stream(engine);
    primitive_.execute(stream, {{DNNL_ARG_SRC, src},
                                {DNNL_ARG_WEIGHTS, weights},
                                {DNNL_ARG_BIAS, b},
                                {DNNL_ARG_DST, dst},
                                {DNNL_ARG_SCRATCHPAD, scratchpad}});
    stream.wait();
  }

 private:
  dnnl::matmul::primitive_desc pd_;
  dnnl::matmul primitive_;
};

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
    product_ = std::make_shared<const detail::Bf16Product>(k_, m_);
  } catch (const dnnl::error&) {
    // oneDNN has no bfloat16 product for this CPU (one without AVX-512): the same values
    // through the f32 product.
    product_.reset();
    fallback_weights_.resize(weights_.size());
    for (size_t i = 0; i < weights_.size(); ++i) fallback_weights_[i] = from_bfloat16(weights_[i]);
  }
}

std::string Bf16Linear::path() const {
  return product_ ? "oneDNN " + product_->implementation() : std::string("f32 product of bfloat16 values");
}

void Bf16Linear::compute(const MatrixView& X, float* Y, int64_t ldy) const {
  const int threads = num_threads();
  const int64_t n = X.rows;
  std::vector<uint16_t> x(static_cast<size_t>(n * k_));
  const int parts = static_cast<int>(std::min<int64_t>(threads, n));
  detail::run_on_threads(parts, [&](int thread, int count) {
    for (int p = thread; p < parts; p += count) {
      const auto [begin, end] = detail::partition(n, parts, p);
      detail::round_rows(X, begin, end - begin, x.data());
    }
    return true;
  });
  if (product_) {
    const detail::OpenMpThreadsForCall scope(threads);
    product_->run(x.data(), n, k_, weights_.data(), bias_.data(), Y, m_, ldy);
  } else {
    std::vector<float> rounded(x.size());
    for (size_t i = 0; i < x.size(); ++i) rounded[i] = from_bfloat16(x[i]);
    detail::fill_rows_on_threads(Y, ldy, n, bias_.data(), m_, threads);
    detail::sgemm(false, false, n, m_, k_, rounded.data(), k_, fallback_weights_.data(), m_, 1.f, Y, ldy, threads);
  }
  // As for the dense product, a NaN or infinity in a row of X leaves no output of it finite.
  if (!detail::rows_finite_on_threads(MatrixView::row_major(Y, n, m_, ldy), threads))
    detail::check_rows_finite(X, nullptr, "bf16");
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
