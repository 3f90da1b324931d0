#include <random>

#include "bench_registry.h"

// Rows with structure: a decaying rank-16 signal plus noise (Gaussian rows flatter no one).
std::vector<float> structured_rows(int64_t n, int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  constexpr int64_t kRank = 16;
  std::vector<float> factors(static_cast<size_t>(kRank * d));
  for (auto& v : factors) v = normal(rng);
  std::vector<float> a(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n; ++i) {
    float z[kRank];
    for (int64_t k = 0; k < kRank; ++k) z[k] = normal(rng) / static_cast<float>(k + 1);
    for (int64_t j = 0; j < d; ++j) {
      float v = 0.1f * normal(rng);
      for (int64_t k = 0; k < kRank; ++k) v += z[k] * factors[k * d + j];
      a[i * d + j] = v;
    }
  }
  return a;
}
