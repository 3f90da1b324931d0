#include "test_util.h"

#include <cmath>

namespace lutmul::testing {

std::vector<float> low_rank_rows(int64_t n, int64_t d, int64_t rank, float noise, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> factors(static_cast<size_t>(rank * d));
  for (auto& v : factors) v = normal(rng);
  std::vector<float> a(static_cast<size_t>(n * d));
  std::vector<float> z(static_cast<size_t>(rank));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < rank; ++k) z[k] = normal(rng) / static_cast<float>(k + 1);  // decaying spectrum
    for (int64_t j = 0; j < d; ++j) {
      float v = 0;
      for (int64_t k = 0; k < rank; ++k) v += z[k] * factors[k * d + j];
      a[i * d + j] = v + noise * normal(rng);
    }
  }
  return a;
}

std::vector<float> clustered_rows(int64_t n, int64_t d, int clusters, float spread, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> centres(static_cast<size_t>(clusters * d));
  for (auto& v : centres) v = 3.f * normal(rng);
  std::vector<float> a(static_cast<size_t>(n * d));
  std::uniform_int_distribution<int> pick(0, clusters - 1);
  for (int64_t i = 0; i < n; ++i) {
    const int c = pick(rng);
    for (int64_t j = 0; j < d; ++j) a[i * d + j] = centres[c * d + j] + spread * normal(rng);
  }
  return a;
}

std::vector<float> uniform(int64_t n, int64_t d, float lo, float hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> a(static_cast<size_t>(n * d));
  for (auto& v : a) v = u(rng);
  return a;
}

std::vector<float> to_col_major(const std::vector<float>& a, int64_t rows, int64_t cols) {
  std::vector<float> out(a.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) out[j * rows + i] = a[i * cols + j];
  return out;
}

std::vector<float> exact_product(const std::vector<float>& a, const std::vector<float>& b, int64_t n, int64_t d, int64_t m) {
  std::vector<float> y(static_cast<size_t>(n * m));
  std::vector<double> acc(static_cast<size_t>(m));
  for (int64_t i = 0; i < n; ++i) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t k = 0; k < d; ++k) {
      const double x = a[i * d + k];
      for (int64_t j = 0; j < m; ++j) acc[j] += x * b[k * m + j];
    }
    for (int64_t j = 0; j < m; ++j) y[i * m + j] = static_cast<float>(acc[j]);
  }
  return y;
}

double relative_error(const std::vector<float>& exact, const std::vector<float>& approx) {
  double num = 0, den = 0;
  for (size_t i = 0; i < exact.size(); ++i) {
    const double diff = double{exact[i]} - approx[i];
    num += diff * diff;
    den += double{exact[i]} * exact[i];
  }
  return std::sqrt(num / den);
}

}  // namespace lutmul::testing
