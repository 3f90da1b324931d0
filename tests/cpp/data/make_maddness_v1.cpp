// Writes a small MADDNESS model in file format version 1 and its outputs on fixed rows: built
// against lutmul at commit 72577f0 (the last release writing version 1) to make the fixtures
// beside it; kept as their provenance, not built by CMake.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <vector>
#include "lutmul/operators/maddness.h"
using namespace lutmul;
int main(int argc, char** argv) {
  const int64_t n = 300, d = 24, m = 5, test = 70;
  std::vector<float> a(n * d), b(d * m), bias(m), x(test * d);
  // Deterministic values, no RNG library differences: a smooth nonlinear pattern.
  for (int64_t i = 0; i < n * d; ++i) a[i] = std::sin(0.37f * static_cast<float>(i)) + 0.25f * std::cos(0.011f * static_cast<float>(i * i % 977));
  for (int64_t i = 0; i < d * m; ++i) b[i] = std::cos(0.53f * static_cast<float>(i)) * (1.f + static_cast<float>(i % m) * 40.f);
  for (int64_t i = 0; i < m; ++i) bias[i] = 0.5f * static_cast<float>(i) - 1.f;
  for (int64_t i = 0; i < test * d; ++i) x[i] = std::sin(0.71f * static_cast<float>(i) + 0.3f);
  MaddnessConfig config;
  config.ncodebooks = 6;
  Maddness model(config);
  model.fit(MatrixView::row_major(a.data(), n, d), MatrixView::row_major(b.data(), d, m), bias.data());
  model.save(argv[1]);
  const Matrix y = model.matmul(MatrixView::row_major(x.data(), test, d));
  // The rows, then their outputs, as raw little-endian float32.
  std::ofstream out(argv[2], std::ios::binary);
  out.write(reinterpret_cast<const char*>(x.data()), static_cast<std::streamsize>(x.size() * sizeof(float)));
  out.write(reinterpret_cast<const char*>(y.values.data()), static_cast<std::streamsize>(y.values.size() * sizeof(float)));
  std::printf("rows %ld outputs %ld\n", static_cast<long>(y.rows), static_cast<long>(y.cols));
}
