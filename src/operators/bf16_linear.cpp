#include "lutmul/operators/bf16_linear.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
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

// Where a forward's rows come from: float X, rounded as they are read, or dense bfloat16 rows
// (leading dimension K) that a previous product wrote.
struct Bf16Input {
  const MatrixView* x = nullptr;
  const uint16_t* bf16 = nullptr;

  // Rows [first, first + count) in bfloat16: a pointer into bf16, or `buffer` with them
  // rounded into it (`ok` becomes false where a value was not finite).
  const uint16_t* rows(int64_t first, int64_t count, int64_t k, uint16_t* buffer, bool& ok) const {
    if (bf16 != nullptr) return bf16 + first * k;
    ok = round_rows(*x, first, count, buffer) && ok;
    return buffer;
  }
};

// y = epilogue(in·W + bias) for n rows. Where AMX blocks run and Y is dense: whole blocks, each
// rounded into a buffer its thread keeps and multiplied on that thread while its rows are
// still in L2, then the last rows as one block padded with zero rows. Otherwise (no AMX, or a
// wider Y) every row through the general primitive. False, with Y unspecified, where a float
// value read was not finite.
bool run_product(const Bf16OnednnProduct& product, const Bf16Input& in, int64_t n, int64_t k, int64_t m,
                 const uint16_t* w, const float* bias, const Bf16OnednnProduct::Output& y, const Epilogue& epilogue) {
  const int threads = num_threads();
  int64_t done = 0;
  if (product.has_blocks() && y.ldy == m) {
    const auto blocks = fixed_row_blocks(n, threads, Bf16OnednnProduct::kBlockRows, done);
    const int parts = static_cast<int>(std::min<int64_t>(threads, static_cast<int64_t>(blocks.size())));
    const bool finite = blocks.empty() || run_on_threads(parts, [&](int thread, int count) {
      thread_local std::vector<uint16_t> buffer;
      buffer.resize(static_cast<size_t>(Bf16OnednnProduct::kBlockRows[0] * k));
      bool ok = true;
      for (size_t b = static_cast<size_t>(thread); b < blocks.size() && ok; b += static_cast<size_t>(count)) {
        const auto [first, rows] = blocks[b];
        const uint16_t* x = in.rows(first, rows, k, buffer.data(), ok);
        if (ok) product.run_block(x, rows, w, bias, y.row(first), y.bf16, epilogue);
      }
      return ok;
    });
    if (!finite) return false;
    if (done < n) {  // fewer rows than the smallest block: one block, padded with zero rows
      constexpr int64_t kRows = std::end(Bf16OnednnProduct::kBlockRows)[-1];
      const int64_t rows = n - done, bytes = y.bf16 ? 2 : 4;
      thread_local std::vector<uint16_t> padded_x;
      thread_local std::vector<uint8_t> padded_y;
      padded_x.assign(static_cast<size_t>(kRows * k), 0);
      padded_y.assign(static_cast<size_t>(kRows * m * bytes), 0);
      bool ok = true;
      const uint16_t* rows_x = in.rows(done, rows, k, padded_x.data(), ok);
      if (!ok) return false;
      if (rows_x != padded_x.data()) std::copy_n(rows_x, rows * k, padded_x.data());
      // The residual that the sum post-op adds goes in with the rows; the real rows come back.
      if (epilogue.accumulate) std::memcpy(padded_y.data(), y.row(done), static_cast<size_t>(rows * m * bytes));
      product.run_block(padded_x.data(), kRows, w, bias, padded_y.data(), y.bf16, epilogue);
      std::memcpy(y.row(done), padded_y.data(), static_cast<size_t>(rows * m * bytes));
    }
    return true;
  }
  if (done == n) return true;
  const int64_t rows = n - done;
  const uint16_t* x = in.bf16 != nullptr ? in.bf16 + done * k : nullptr;
  std::vector<uint16_t> buffer;
  if (x == nullptr) {  // float rows: all rounded first, then one product
    buffer.resize(static_cast<size_t>(rows * k));
    const int parts = static_cast<int>(std::min<int64_t>(threads, rows));
    const bool finite = run_on_threads(parts, [&](int thread, int count) {
      bool ok = true;
      for (int p = thread; p < parts; p += count) {
        const auto [begin, end] = partition(rows, parts, p);
        in.rows(done + begin, end - begin, k, buffer.data() + begin * k, ok);
      }
      return ok;
    });
    if (!finite) return false;
    x = buffer.data();
  }
  product.run(x, rows, w, bias, Bf16OnednnProduct::Output{y.row(done), y.ldy, y.bf16}, threads, epilogue);
  return true;
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
    // oneDNN has no bfloat16 product for this CPU (one without AVX-512): lutmul's panels where
    // it has a vector kernel for them, else the same values through the f32 product.
    product_.reset();
    if (detail::active_kernels().panel_gemm_bf16 != kernels::panel_gemm_bf16_scalar_kernel()) {
      panels_.resize(static_cast<size_t>(kernels::panel_count(m_) * k_ * kernels::kPanelWidth));
      kernels::pack_bf16_panels(weights_.data(), m_, k_, m_, panels_.data());
      return;
    }
    fallback_weights_.resize(weights_.size());
    for (size_t i = 0; i < weights_.size(); ++i) fallback_weights_[i] = from_bfloat16(weights_[i]);
  }
}

// Only where AMX blocks run, the path measured (Sapphire Rapids); oneDNN's gemm:jit alone
// (Zen 4) keeps the separate pass.
bool Bf16Linear::fuses_epilogue() const { return product_ != nullptr && product_->has_blocks(); }

std::string Bf16Linear::path() const {
  if (product_) return "oneDNN " + product_->implementation();
  return panels_.empty() ? std::string("f32 product of bfloat16 values") : std::string("lutmul bfloat16 panels");
}

void Bf16Linear::compute(const MatrixView& X, float* Y, int64_t ldy) const { compute_with(X, Y, ldy, Epilogue{}); }

void Bf16Linear::forward_fused(const MatrixView& X, float* Y, int64_t ldy, const Epilogue& epilogue) const {
  check_forward(X, Y, ldy);
  if (X.rows > 0) compute_with(X, Y, ldy, epilogue);
}

void Bf16Linear::compute_with(const MatrixView& X, float* Y, int64_t ldy, const Epilogue& epilogue) const {
  if (product_) {
    const detail::Bf16OnednnProduct::Output y{Y, ldy, false};
    if (!detail::run_product(*product_, detail::Bf16Input{&X, nullptr}, X.rows, k_, m_, weights_.data(), bias_.data(), y,
                             epilogue))
      detail::check_rows_finite(X, nullptr, "bf16");  // throws, naming the row
    return;
  }
  // No oneDNN bfloat16 product (a CPU without AVX-512; fuses_epilogue() is false).
  if (!panels_.empty()) return compute_on_panels(X, Y, ldy);
  // Not even a vector panel kernel: the rounded values through the f32 product.
  const int threads = num_threads();
  const int64_t n = X.rows;
  std::vector<uint16_t> x(static_cast<size_t>(n * k_));
  const int parts = static_cast<int>(std::min<int64_t>(threads, n));
  const bool finite = detail::run_on_threads(parts, [&](int thread, int count) {
    bool ok = true;
    for (int p = thread; p < parts; p += count) {
      const auto [begin, end] = detail::partition(n, parts, p);
      ok = detail::round_rows(X, begin, end - begin, x.data() + begin * k_) && ok;
    }
    return ok;
  });
  if (!finite) detail::check_rows_finite(X, nullptr, "bf16");
  std::vector<float> rounded(x.size());
  for (size_t i = 0; i < rounded.size(); ++i) rounded[i] = from_bfloat16(x[i]);
  detail::fill_rows_on_threads(Y, ldy, n, bias_.data(), m_, threads);
  detail::sgemm(false, false, n, m_, k_, rounded.data(), k_, fallback_weights_.data(), m_, 1.f, Y, ldy, threads);
}

// X in blocks of rows, each rounded to bfloat16 (as floats, which the panel kernel broadcasts)
// by all threads into a buffer the calling thread keeps, then multiplied with the panels split
// among the threads, so that on a few rows each thread reads only its share of the weights.
void Bf16Linear::compute_on_panels(const MatrixView& X, float* Y, int64_t ldy) const {
  constexpr int64_t kBlockRows = 256;
  const kernels::PanelGemmFn panel_gemm = detail::active_kernels().panel_gemm_bf16;
  const kernels::RoundBf16FloatsFn round = detail::active_kernels().runtime.round_bf16_floats;
  const int threads = num_threads();
  const int64_t panels = kernels::panel_count(m_);
  thread_local std::vector<float> buffer;
  buffer.resize(static_cast<size_t>(std::min(X.rows, kBlockRows) * k_));
  float* const rounded = buffer.data();  // the calling thread's, named so in the workers
  for (int64_t first = 0; first < X.rows; first += kBlockRows) {
    const int64_t rows = std::min(X.rows - first, kBlockRows);
    const int parts = static_cast<int>(std::min<int64_t>(threads, rows));
    const bool finite = detail::run_on_threads(parts, [&](int thread, int count) {
      thread_local std::vector<uint16_t> bits;
      bool ok = true;
      const auto [begin, end] = detail::partition(rows, count, thread);
      for (int64_t r = begin; r < end; ++r) {
        float* out = rounded + r * k_;
        if (X.layout == Layout::row_major) {
          ok = round(X.data + (first + r) * X.leading_dim(), k_, out) && ok;
          continue;
        }
        bits.resize(static_cast<size_t>(k_));
        ok = detail::round_rows(X, first + r, 1, bits.data()) && ok;
        for (int64_t j = 0; j < k_; ++j) out[j] = from_bfloat16(bits[static_cast<size_t>(j)]);
      }
      return ok;
    });
    if (!finite) detail::check_rows_finite(X, nullptr, "bf16");  // throws, naming the row
    kernels::PanelGemmArgs args;
    args.x = rounded;
    args.ldx = k_;
    args.rows = rows;
    args.k = k_;
    args.bf16_panels = panels_.data();
    args.bias = bias_.data();
    args.m = m_;
    args.y = Y + first * ldy;
    args.ldy = ldy;
    const int used = static_cast<int>(std::min<int64_t>(threads, panels));
    detail::run_on_threads(used, [&](int thread, int count) {
      const auto [begin, end] = detail::partition(panels, count, thread);
      panel_gemm(args, begin, end);
      return true;
    });
  }
}

void Bf16Linear::check_chainable(const char* who) const {
  LUTMUL_CHECK(fuses_epilogue(), "Bf16Linear::", who, " needs oneDNN's AMX blocks (", path(), " runs here)");
  (void)active_isa();  // an LUTMUL_ISA this CPU cannot run is an error, as for forward
}

void Bf16Linear::check_output(const void* Y, int64_t rows, int64_t ldy) const {
  LUTMUL_CHECK(ldy >= m_, "bf16 forward: ldy (", ldy, ") is smaller than M (", m_, ")");
  LUTMUL_CHECK(Y != nullptr || rows == 0, "bf16 forward: Y is null");
}

void Bf16Linear::forward_bf16_out(const MatrixView& X, uint16_t* Y, int64_t ldy, const Epilogue& epilogue) const {
  check_chainable("forward_bf16_out");
  check_view(X, "X");
  LUTMUL_CHECK(X.cols == k_, "bf16 forward: X must have K = ", k_, " columns, got ", X.rows, " x ", X.cols);
  check_output(Y, X.rows, ldy);
  if (X.rows == 0) return;
  const detail::Bf16OnednnProduct::Output y{Y, ldy, true};
  if (!detail::run_product(*product_, detail::Bf16Input{&X, nullptr}, X.rows, k_, m_, weights_.data(), bias_.data(), y,
                           epilogue))
    detail::check_rows_finite(X, nullptr, "bf16");
}

void Bf16Linear::forward_bf16_in(const uint16_t* X, int64_t rows, float* Y, int64_t ldy, const Epilogue& epilogue) const {
  check_chainable("forward_bf16_in");
  LUTMUL_CHECK(rows >= 0, "Bf16Linear::forward_bf16_in: rows must be at least 0, got ", rows);
  LUTMUL_CHECK(rows == 0 || X != nullptr, "Bf16Linear::forward_bf16_in: X is null");
  check_output(Y, rows, ldy);
  if (rows == 0) return;
  detail::run_product(*product_, detail::Bf16Input{nullptr, X}, rows, k_, m_, weights_.data(), bias_.data(),
                      detail::Bf16OnednnProduct::Output{Y, ldy, false}, epilogue);
  // X is not read twice: a non-finite value there leaves its row of Y non-finite, so Y is
  // checked (M values a row, not K), and X only where Y is not finite.
  if (detail::rows_finite_on_threads(MatrixView::row_major(Y, rows, m_, ldy), num_threads())) return;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k_; ++j)
      LUTMUL_CHECK(std::isfinite(from_bfloat16(X[r * k_ + j])), "bf16 forward: X has a non-finite value at row ", r,
                   ", column ", j);
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
