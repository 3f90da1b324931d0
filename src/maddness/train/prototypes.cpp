// Prototype fitting (MADDNESS §4.4): with G the N × KC one-hot code matrix (K leaves per tree), solve
//   P = argmin ||A − G·P||² + λ·||P − P0||²
// jointly for all codebooks, P0 the trees' bucket means. Through the eigendecomposition
// GᵀG = Q·diag(e)·Qᵀ every λ costs one GEMM, so λ is chosen by k-fold cross-validation,
// then the system is solved again on all rows. GᵀG is built from code co-occurrence counts; the
// one-hot matrix itself never exists.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "core/blas.h"
#include "lutmul/core/error.h"
#include "maddness/train/training.h"

namespace lutmul::train {
namespace {

struct NormalEquations {
  int64_t rows = 0;
  std::vector<double> gram;    // K × K: GᵀG
  std::vector<double> target;  // K × D: GᵀA
  double squares = 0;          // ||A||²
};

NormalEquations normal_equations(const float* a, int64_t d, const std::vector<uint8_t>& codes, int ncodebooks,
                                 int kLeaves, const std::vector<int64_t>& rows, int threads) {
  const int64_t k = int64_t{ncodebooks} * kLeaves;
  NormalEquations eq;
  eq.rows = static_cast<int64_t>(rows.size());
  eq.gram.assign(static_cast<size_t>(k * k), 0.0);
  eq.target.assign(static_cast<size_t>(k * d), 0.0);
  for (int64_t r : rows) {
    const uint8_t* code = &codes[r * ncodebooks];
    for (int c = 0; c < ncodebooks; ++c) {
      double* gram_row = &eq.gram[(c * kLeaves + code[c]) * k];
      for (int c2 = 0; c2 < ncodebooks; ++c2) gram_row[c2 * kLeaves + code[c2]] += 1.0;
    }
  }
  // Column chunks per thread: every sum runs over rows in the same order, whatever the threads.
  double squares = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : squares)
  for (int64_t j0 = 0; j0 < d; j0 += 32) {
    const int64_t j1 = std::min(d, j0 + 32);
    double chunk_squares = 0;
    for (int64_t r : rows) {
      const float* x = a + r * d;
      const uint8_t* code = &codes[r * ncodebooks];
      for (int c = 0; c < ncodebooks; ++c) {
        double* t = &eq.target[(c * kLeaves + code[c]) * d];
        for (int64_t j = j0; j < j1; ++j) t[j] += x[j];
      }
      for (int64_t j = j0; j < j1; ++j) chunk_squares += double{x[j]} * x[j];
    }
    squares += chunk_squares;
  }
  eq.squares = squares;
  return eq;
}

struct Eigen {
  std::vector<double> vectors;  // K × K, column i is eigenvector i (column-major from LAPACK)
  std::vector<double> values;
};

Eigen eigendecompose(std::vector<double> gram, int64_t k) {
  Eigen e;
  e.values.resize(static_cast<size_t>(k));
  const int n = static_cast<int>(k);
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  dsyevd_("V", "U", &n, gram.data(), &n, e.values.data(), &work_query, &lwork, &iwork_query, &liwork, &info, 1, 1);
  lwork = static_cast<int>(work_query);
  liwork = iwork_query;
  std::vector<double> work(static_cast<size_t>(lwork));
  std::vector<int> iwork(static_cast<size_t>(liwork));
  dsyevd_("V", "U", &n, gram.data(), &n, e.values.data(), work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1);
  LUTMUL_CHECK(info == 0, "ridge prototypes: LAPACK dsyevd failed (info = ", info, ")");
  e.vectors = std::move(gram);  // symmetric input, so row-major reading gives Qᵀ
  return e;
}

// P = Q · diag(1 / (e + λ)) · (Qᵀ·T + λ·Qᵀ·P0), all K × D row-major.
std::vector<double> solve(const Eigen& eig, const std::vector<double>& projected_target,
                          const std::vector<double>& projected_means, double lambda, int64_t k, int64_t d) {
  std::vector<double> y(static_cast<size_t>(k * d));
  const double largest = std::max(1.0, eig.values.back());
  for (int64_t i = 0; i < k; ++i) {
    const double denom = eig.values[i] + lambda;
    // λ = 0: pseudo-inverse (directions the codes never distinguish get nothing).
    const double inv = denom > 1e-9 * largest ? 1.0 / denom : 0.0;
    for (int64_t j = 0; j < d; ++j)
      y[i * d + j] = inv * (projected_target[i * d + j] + lambda * projected_means[i * d + j]);
  }
  std::vector<double> p(static_cast<size_t>(k * d));
  // eig.vectors holds Q column-major, i.e. Qᵀ row-major: P = (Qᵀ)ᵀ · Y.
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(k), static_cast<int>(d), static_cast<int>(k),
              1.0, eig.vectors.data(), static_cast<int>(k), y.data(), static_cast<int>(d), 0.0, p.data(),
              static_cast<int>(d));
  return p;
}

std::vector<double> project(const Eigen& eig, const std::vector<double>& m, int64_t k, int64_t d) {
  std::vector<double> out(static_cast<size_t>(k * d));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(k), static_cast<int>(d), static_cast<int>(k),
              1.0, eig.vectors.data(), static_cast<int>(k), m.data(), static_cast<int>(d), 0.0, out.data(),
              static_cast<int>(d));
  return out;
}

// ||A − G·P||² on the rows behind `eq`: ||A||² − 2⟨P, GᵀA⟩ + ⟨P, GᵀG·P⟩.
double squared_error(const NormalEquations& eq, const std::vector<double>& p, int64_t k, int64_t d) {
  std::vector<double> gp(static_cast<size_t>(k * d));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(k), static_cast<int>(d), static_cast<int>(k),
              1.0, eq.gram.data(), static_cast<int>(k), p.data(), static_cast<int>(d), 0.0, gp.data(),
              static_cast<int>(d));
  double cross = 0, quad = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    cross += p[i] * eq.target[i];
    quad += p[i] * gp[i];
  }
  return eq.squares - 2 * cross + quad;
}

}  // namespace

RidgeFit fit_ridge_prototypes(const float* a, int64_t n, int64_t d, const LearnedTrees& trees, int ncodebooks,
                              int kLeaves, std::vector<double> lambdas, double heldout_fraction, uint64_t seed, int threads,
                              const ProgressCallback& progress) {
  const int64_t k = int64_t{ncodebooks} * kLeaves;
  if (lambdas.empty()) lambdas = {1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0};
  for (double l : lambdas) LUTMUL_CHECK(std::isfinite(l) && l >= 0, "ridge_lambdas: ", l, " is not a finite value >= 0");
  const std::vector<double> means(trees.bucket_means.begin(), trees.bucket_means.end());

  // Folds: a seeded Fisher-Yates shuffle (std::shuffle differs between libraries), then
  // every `folds`-th row of it. Each fold holds out about `heldout_fraction` of the rows;
  // λ minimises the held-out error summed over folds. One split alone picked λ noisily: on
  // the digits, 2 seeds in 10 chose a λ 3x larger, and lost 3 test digits with it.
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1))]);
  const int64_t folds =
      heldout_fraction > 0 ? std::clamp<int64_t>(std::llround(1.0 / heldout_fraction), 2, 10) : 0;

  double chosen = lambdas[lambdas.size() / 2];
  NormalEquations all;
  if (folds > 0 && n / folds >= kLeaves) {
    std::vector<NormalEquations> parts;
    for (int64_t f = 0; f < folds; ++f) {
      std::vector<int64_t> rows;
      for (int64_t i = f; i < n; i += folds) rows.push_back(order[i]);
      std::sort(rows.begin(), rows.end());
      parts.push_back(normal_equations(a, d, trees.codes, ncodebooks, kLeaves, rows, threads));
    }
    // The sums over all rows, and for each fold over the other folds, add in fold order.
    const auto sum_except = [&](int64_t skip) {
      NormalEquations total;
      total.gram.assign(parts[0].gram.size(), 0.0);
      total.target.assign(parts[0].target.size(), 0.0);
      for (int64_t f = 0; f < folds; ++f) {
        if (f == skip) continue;
        total.rows += parts[f].rows;
        total.squares += parts[f].squares;
        for (size_t i = 0; i < total.gram.size(); ++i) total.gram[i] += parts[f].gram[i];
        for (size_t i = 0; i < total.target.size(); ++i) total.target[i] += parts[f].target[i];
      }
      return total;
    };
    std::vector<double> errors(lambdas.size(), 0.0);
    double means_error = 0;
    for (int64_t f = 0; f < folds; ++f) {
      const NormalEquations train = sum_except(f);
      const NormalEquations& test = parts[f];
      const Eigen eig = eigendecompose(train.gram, k);
      const std::vector<double> projected_target = project(eig, train.target, k, d);
      const std::vector<double> projected_means = project(eig, means, k, d);
      const double unit = static_cast<double>(train.rows) / kLeaves;
      means_error += squared_error(test, means, k, d);
      for (size_t i = 0; i < lambdas.size(); ++i)
        errors[i] += squared_error(test, solve(eig, projected_target, projected_means, lambdas[i] * unit, k, d), k, d);
      if (progress) progress("ridge", f + 1, folds + 1);
    }
    double best = means_error;
    chosen = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < lambdas.size(); ++i)
      if (errors[i] < best) best = errors[i], chosen = lambdas[i];
    all = sum_except(-1);
  }

  RidgeFit fit;
  fit.lambda = chosen;
  if (std::isinf(chosen)) {
    fit.prototypes = trees.bucket_means;
  } else {
    if (all.rows == 0) {
      std::sort(order.begin(), order.end());
      all = normal_equations(a, d, trees.codes, ncodebooks, kLeaves, order, threads);
    }
    const Eigen eig = eigendecompose(all.gram, k);
    const std::vector<double> p = solve(eig, project(eig, all.target, k, d), project(eig, means, k, d),
                                        chosen * static_cast<double>(n) / kLeaves, k, d);
    fit.prototypes.assign(p.begin(), p.end());
  }
  if (progress) progress("ridge", std::max<int64_t>(folds, 0) + 1, std::max<int64_t>(folds, 0) + 1);
  return fit;
}

}  // namespace lutmul::train
