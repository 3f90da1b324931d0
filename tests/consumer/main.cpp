// Links against the installed package and checks one product end to end, and that the
// runtime (lutmul/runtime.h) links.
#include <lutmul/lutmul.h>
#include <lutmul/runtime.h>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  const int64_t n = 512, d = 32, m = 4;
  std::vector<float> a(n * d), b(d * m);
  for (int64_t i = 0; i < n * d; ++i) a[i] = std::sin(0.1f * static_cast<float>(i % 97)) + static_cast<float>(i % d) * 0.01f;
  for (int64_t i = 0; i < d * m; ++i) b[i] = std::cos(0.3f * static_cast<float>(i));
  lutmul::MaddnessConfig config;
  config.ncodebooks = 8;
  lutmul::Maddness model(config);
  model.fit(lutmul::MatrixView::row_major(a.data(), n, d), lutmul::MatrixView::row_major(b.data(), d, m));
  const lutmul::Matrix y = model.matmul(lutmul::MatrixView::row_major(a.data(), n, d));
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      double exact = 0;
      for (int64_t k = 0; k < d; ++k) exact += double{a[i * d + k]} * b[k * m + j];
      num += (exact - y(i, j)) * (exact - y(i, j));
      den += exact * exact;
    }
  const double err = std::sqrt(num / den);
  std::printf("installed lutmul %s: relative error %.4f\n", lutmul::isa_name(lutmul::active_isa()).c_str(), err);
  // The runtime's header and symbols are installed too: a folder without a model is an error.
  bool refused = false;
  try {
    lutmul::runtime::Encoder::load("/nonexistent/lutmul/model");
  } catch (const lutmul::Error&) {
    refused = true;
  }
  return err < 0.5 && refused ? 0 : 1;
}
