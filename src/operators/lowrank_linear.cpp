#include "lutmul/operators/lowrank_linear.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "core/blas.h"
#include "core/sgemm.h"
#include "core/file_format.h"
#include "core/finite.h"
#include "lutmul/core/error.h"
#include "lutmul/core/threading.h"
#include "operators/operator_skeleton.h"

namespace lutmul {
namespace {

constexpr int64_t kChunkRows = 512;  // calibration rows widened to double at a time

int to_int(int64_t v) { return static_cast<int>(v); }

// Rows [r0, r0 + rows) of X as row-major doubles.
void widen_rows(const MatrixView& X, int64_t r0, int64_t rows, std::vector<double>& out) {
  out.resize(static_cast<size_t>(rows * X.cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < X.cols; ++j) out[i * X.cols + j] = X.at(r0 + i, j);
}

// C = XᵀX / N, K × K row-major, both triangles.
std::vector<double> second_moment(const MatrixView& X) {
  const int64_t k = X.cols;
  std::vector<double> c(static_cast<size_t>(k * k), 0.0), chunk;
  for (int64_t r0 = 0; r0 < X.rows; r0 += kChunkRows) {
    const int64_t rows = std::min(kChunkRows, X.rows - r0);
    widen_rows(X, r0, rows, chunk);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, to_int(k), to_int(rows), 1.0 / static_cast<double>(X.rows),
                chunk.data(), to_int(k), 1.0, c.data(), to_int(k));
  }
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < i; ++j) c[i * k + j] = c[j * k + i];
  return c;
}

// C = Q·Λ·Qᵀ; returns Qᵀ row-major (row i: eigenvector i) and the damped roots √(λᵢ + δ).
struct Whitening {
  std::vector<double> qt;
  std::vector<double> root;
};

Whitening whitening(std::vector<double> c, int64_t k, double damping) {
  Whitening w;
  std::vector<double> values(static_cast<size_t>(k));
  const int n = to_int(k);
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  dsyevd_("V", "U", &n, c.data(), &n, values.data(), &work_query, &lwork, &iwork_query, &liwork, &info, 1, 1);
  lwork = static_cast<int>(work_query);
  liwork = iwork_query;
  std::vector<double> work(static_cast<size_t>(lwork));
  std::vector<int> iwork(static_cast<size_t>(liwork));
  dsyevd_("V", "U", &n, c.data(), &n, values.data(), work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1);
  LUTMUL_CHECK(info == 0, "LowRankLinear: LAPACK dsyevd failed on the calibration second moment (info = ", info, ")");
  double trace = 0;
  for (double v : values) trace += std::max(v, 0.0);
  // All-zero calibration rows carry no information: damping alone makes S isotropic (plain SVD).
  const double delta = damping * (trace > 0 ? trace / static_cast<double>(k) : 1.0);
  w.root.resize(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) w.root[i] = std::sqrt(std::max(values[i], 0.0) + delta);  // rounding can make λ < 0
  w.qt = std::move(c);  // column-major eigenvectors read row-major: Qᵀ
  return w;
}

// A (K × M, row-major, destroyed) = left · diag(s) · right with left K × L, right L × M.
struct Svd {
  std::vector<double> left, s, right;
};

Svd svd(std::vector<double> a, int64_t k, int64_t m) {
  // Row-major A is column-major Aᵀ (M × K). LAPACK's Aᵀ = U'·S·V'ᵀ gives A = V'·S·U'ᵀ, and
  // its outputs read row-major are exactly left = V' (K × L) and right = U'ᵀ (L × M).
  const int64_t l = std::min(k, m);
  Svd out;
  out.s.resize(static_cast<size_t>(l));
  out.right.resize(static_cast<size_t>(m * l));
  out.left.resize(static_cast<size_t>(l * k));
  const int rows = to_int(m), cols = to_int(k), ldu = to_int(m), ldvt = to_int(l);
  std::vector<int> iwork(static_cast<size_t>(8 * l));
  int info = 0, lwork = -1;
  double work_query = 0;
  dgesdd_("S", &rows, &cols, a.data(), &rows, out.s.data(), out.right.data(), &ldu, out.left.data(), &ldvt,
          &work_query, &lwork, iwork.data(), &info, 1);
  LUTMUL_CHECK(info == 0, "LowRankLinear: LAPACK dgesdd workspace query failed (info = ", info, ")");
  lwork = static_cast<int>(std::min(work_query, static_cast<double>(INT_MAX)));
  std::vector<double> work(static_cast<size_t>(lwork));
  dgesdd_("S", &rows, &cols, a.data(), &rows, out.s.data(), out.right.data(), &ldu, out.left.data(), &ldvt, work.data(),
          &lwork, iwork.data(), &info, 1);
  LUTMUL_CHECK(info == 0, "LowRankLinear: LAPACK dgesdd did not converge (info = ", info, ")");
  return out;
}

// Relative error on the calibration rows at every rank. With W = Σᵢ uᵢσᵢvᵢᵀ exactly and the vᵢ
// orthonormal, the residual of rank r is Σ_{i>r} (X·uᵢ)σᵢvᵢᵀ, so its squared norm is
// Σ_{i>r} σᵢ²‖X·uᵢ‖²: one product X·U gives every rank at once.
std::vector<double> errors_by_rank(const MatrixView& X, const std::vector<double>& left, const std::vector<double>& s,
                                   const std::vector<double>& w, const std::vector<float>& bias, int64_t m) {
  const int64_t k = X.cols, l = static_cast<int64_t>(s.size());
  std::vector<double> column_squares(static_cast<size_t>(l), 0.0), chunk, z, y;
  double exact_squares = 0;
  for (int64_t r0 = 0; r0 < X.rows; r0 += kChunkRows) {
    const int64_t rows = std::min(kChunkRows, X.rows - r0);
    widen_rows(X, r0, rows, chunk);
    z.resize(static_cast<size_t>(rows * l));
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, to_int(rows), to_int(l), to_int(k), 1.0, chunk.data(),
                to_int(k), left.data(), to_int(l), 0.0, z.data(), to_int(l));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < l; ++j) column_squares[j] += z[i * l + j] * z[i * l + j];
    y.resize(static_cast<size_t>(rows * m));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < m; ++j) y[i * m + j] = bias[j];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, to_int(rows), to_int(m), to_int(k), 1.0, chunk.data(),
                to_int(k), w.data(), to_int(m), 1.0, y.data(), to_int(m));
    for (double v : y) exact_squares += v * v;
  }
  if (exact_squares == 0) return {};  // no relative error exists
  std::vector<double> errors(static_cast<size_t>(l) + 1, 0.0);
  double tail = 0;
  for (int64_t r = l; r-- > 0;) {
    tail += s[r] * s[r] * column_squares[r];
    errors[r] = std::sqrt(tail / exact_squares);
  }
  return errors;
}

}  // namespace

LowRankLinear::LowRankLinear(const MatrixView& W, const float* bias, LowRankConfig config,
                             const MatrixView* calibration)
    : SizedLinearOperator("low_rank") {
  detail::check_weights(W, "LowRankLinear");
  LUTMUL_CHECK(W.rows * W.cols <= INT_MAX, "LowRankLinear: W (", W.rows, " x ", W.cols, ") is too large for LAPACK");
  k_ = W.rows;
  m_ = W.cols;
  const int64_t l = std::min(k_, m_);
  switch (config.rule) {
    case RankRule::fixed:
      LUTMUL_CHECK(config.rank >= 1 && config.rank <= l, "LowRankConfig.rank must be in [1, min(K, M) = ", l, "], got ",
                   config.rank);
      break;
    case RankRule::energy:
      LUTMUL_CHECK(config.energy > 0 && config.energy <= 1, "LowRankConfig.energy must be in (0, 1], got ", config.energy);
      break;
    case RankRule::max_error:
      LUTMUL_CHECK(config.max_error > 0 && std::isfinite(config.max_error), "LowRankConfig.max_error must be > 0, got ",
                   config.max_error);
      LUTMUL_CHECK(calibration != nullptr, "LowRankLinear: the max_error rule measures the error on calibration rows; "
                                           "none were given");
      break;
  }
  LUTMUL_CHECK(!config.data_aware || calibration != nullptr,
               "LowRankLinear: the data-aware variant whitens by calibration rows; none were given");
  LUTMUL_CHECK(config.damping > 0 && std::isfinite(config.damping), "LowRankConfig.damping must be > 0, got ",
               config.damping);
  if (calibration != nullptr) detail::check_calibration(*calibration, k_, "LowRankLinear");
  bias_ = detail::copy_bias(bias, m_, "LowRankLinear");

  detail::use_single_threaded_blas();
  std::vector<double> w(static_cast<size_t>(k_ * m_));
  for (int64_t i = 0; i < k_; ++i)
    for (int64_t j = 0; j < m_; ++j) w[i * m_ + j] = W.at(i, j);

  Svd factors;
  if (config.data_aware) {
    const Whitening white = whitening(second_moment(*calibration), k_, config.damping);
    std::vector<double> g(static_cast<size_t>(k_ * m_));  // S·W = diag(root)·Qᵀ·W
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, to_int(k_), to_int(m_), to_int(k_), 1.0, white.qt.data(),
                to_int(k_), w.data(), to_int(m_), 0.0, g.data(), to_int(m_));
    for (int64_t i = 0; i < k_; ++i)
      for (int64_t j = 0; j < m_; ++j) g[i * m_ + j] *= white.root[i];
    factors = svd(std::move(g), k_, m_);
    // Back through S⁻¹ = Q·diag(1/root).
    for (int64_t i = 0; i < k_; ++i)
      for (int64_t j = 0; j < l; ++j) factors.left[i * l + j] /= white.root[i];
    std::vector<double> unwhitened(static_cast<size_t>(k_ * l));
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, to_int(k_), to_int(l), to_int(k_), 1.0, white.qt.data(),
                to_int(k_), factors.left.data(), to_int(l), 0.0, unwhitened.data(), to_int(l));
    factors.left.swap(unwhitened);
  } else {
    factors = svd(w, k_, m_);
  }
  singular_values_ = factors.s;
  if (calibration != nullptr) calibration_errors_ = errors_by_rank(*calibration, factors.left, factors.s, w, bias_, m_);

  switch (config.rule) {
    case RankRule::fixed:
      rank_ = config.rank;
      break;
    case RankRule::energy: {
      double total = 0;
      for (double s : factors.s) total += s * s;
      double kept = 0;
      rank_ = l;
      for (int64_t r = 0; r < l; ++r) {
        kept += factors.s[r] * factors.s[r];
        if (kept >= config.energy * total) {
          rank_ = r + 1;
          break;
        }
      }
      break;
    }
    case RankRule::max_error:
      LUTMUL_CHECK(!calibration_errors_.empty(), "LowRankLinear: the exact product X·W + bias is zero on every "
                                                 "calibration row, so no relative error can be measured on them");
      rank_ = l;
      for (int64_t r = 1; r <= l; ++r)
        if (calibration_errors_[r] <= config.max_error) {
          rank_ = r;
          break;
        }
      break;
  }

  u_.resize(static_cast<size_t>(k_ * rank_));
  v_.resize(static_cast<size_t>(rank_ * m_));
  for (int64_t i = 0; i < k_; ++i)
    for (int64_t j = 0; j < rank_; ++j) u_[i * rank_ + j] = static_cast<float>(factors.left[i * l + j] * factors.s[j]);
  for (int64_t j = 0; j < rank_; ++j)
    for (int64_t c = 0; c < m_; ++c) v_[j * m_ + c] = static_cast<float>(factors.right[j * m_ + c]);
  for (float x : u_) LUTMUL_CHECK(std::isfinite(x), "LowRankLinear: the factor U overflowed float (W too large?)");
}

LowRankLinear::LowRankLinear(const MatrixView& U, const MatrixView& V, const float* bias)
    : SizedLinearOperator("low_rank") {
  check_view(U, "U");
  check_view(V, "V");
  LUTMUL_CHECK(U.rows >= 1 && U.cols >= 1 && V.cols >= 1 && U.cols == V.rows,
               "LowRankLinear: U must be K x r and V r x M with K, r, M >= 1, got U ", U.rows, " x ", U.cols, " and V ",
               V.rows, " x ", V.cols);
  check_finite(U, "U");
  check_finite(V, "V");
  k_ = U.rows;
  rank_ = U.cols;
  m_ = V.cols;
  u_.resize(static_cast<size_t>(k_ * rank_));
  v_.resize(static_cast<size_t>(rank_ * m_));
  for (int64_t i = 0; i < k_; ++i)
    for (int64_t j = 0; j < rank_; ++j) u_[i * rank_ + j] = U.at(i, j);
  for (int64_t j = 0; j < rank_; ++j)
    for (int64_t c = 0; c < m_; ++c) v_[j * m_ + c] = V.at(j, c);
  bias_ = detail::copy_bias(bias, m_, "LowRankLinear");
}

int64_t LowRankLinear::bytes() const {
  return static_cast<int64_t>((u_.size() + v_.size() + bias_.size()) * sizeof(float));
}

void LowRankLinear::compute(const MatrixView& X, float* Y, int64_t ldy) const {
  const int64_t n = X.rows, ldx = X.leading_dim();
  const bool row_major = X.layout == Layout::row_major;
  std::vector<float> t(static_cast<size_t>(n * rank_));
  // Rows among threads, each its own t = X·U then Y = t·V + bias; a few rows stay on one.
  const int threads = n >= 16 * num_threads() ? num_threads() : 1;
  const bool finite = detail::run_on_threads(threads, [&](int thread, int count) {
    const auto [first, end] = detail::partition(n, count, thread);
    const int64_t rows = end - first;
    if (rows == 0) return true;
    const float* x = X.data + first * (row_major ? ldx : 1);
    float* tr = t.data() + first * rank_;
    float* y = Y + first * ldy;
    // t = X·U, then y = t·V + bias, each on this thread alone.
    detail::sgemm(!row_major, false, rows, rank_, k_, x, ldx, u_.data(), rank_, 0.f, tr, rank_, 1);
    // A NaN or infinity anywhere in a row of X makes that row of t non-finite: checking t (r
    // columns) is cheaper than checking X (K columns).
    if (!detail::all_finite(tr, static_cast<size_t>(rows * rank_))) return false;
    for (int64_t i = 0; i < rows; ++i) std::copy(bias_.begin(), bias_.end(), y + i * ldy);
    detail::sgemm(false, false, rows, m_, rank_, tr, rank_, v_.data(), m_, 1.f, y, ldy, 1);
    return true;
  });
  // Only then is X searched for the culprit.
  if (!finite) {
    check_finite(X, "low_rank forward: X");
    detail::throw_error("low_rank forward: X·U overflowed float (inputs too large)");
  }
}

std::vector<uint8_t> LowRankLinear::payload() const {
  return detail::pack(k_, m_, rank_, u_, v_, bias_);
}

std::unique_ptr<LowRankLinear> LowRankLinear::from_payload(const uint8_t* data, size_t size) {
  detail::ByteReader r(data, size, "operator file");
  const int64_t k = r.get<int64_t>("K"), m = r.get<int64_t>("M"), rank = r.get<int64_t>("rank");
  LUTMUL_CHECK(k >= 1 && m >= 1 && rank >= 1 && k <= INT32_MAX && m <= INT32_MAX && rank <= std::min(k, m),
               "operator file is corrupt: low-rank K = ", k, ", M = ", m, ", rank = ", rank);
  const std::vector<float> u = r.get_array<float>("U", static_cast<uint64_t>(k * rank));
  const std::vector<float> v = r.get_array<float>("V", static_cast<uint64_t>(rank * m));
  const std::vector<float> bias = r.get_array<float>("bias", static_cast<uint64_t>(m));
  LUTMUL_CHECK(r.done(), "operator file is corrupt: unexpected bytes after the low-rank factors");
  // The factor constructor checks that every value is finite.
  return std::make_unique<LowRankLinear>(MatrixView::row_major(u.data(), k, rank), MatrixView::row_major(v.data(), rank, m),
                                         bias.data());
}

}  // namespace lutmul
