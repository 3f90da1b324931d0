// Links lutmul::cuda from the installed package (find_package(lutmul COMPONENTS cuda)):
// without a GPU it reports why; with one it checks a small product against the CPU.
#include <lutmul/cuda/cuda.h>
#include <lutmul/lutmul.h>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  if (!lutmul::cuda::available()) {
    std::printf("installed lutmul_cuda links; no GPU here: %s\n", lutmul::cuda::unavailable_reason().c_str());
    return 0;
  }
  const int64_t n = 64, k = 32, m = 8;
  std::vector<float> x(n * k), w(k * m);
  for (int64_t i = 0; i < n * k; ++i) x[i] = std::sin(0.1f * static_cast<float>(i));
  for (int64_t i = 0; i < k * m; ++i) w[i] = std::cos(0.3f * static_cast<float>(i));
  const lutmul::Matrix cpu = lutmul::DenseLinear(lutmul::MatrixView::row_major(w.data(), k, m))
                                 .forward(lutmul::MatrixView::row_major(x.data(), n, k));
  const lutmul::Matrix gpu = lutmul::cuda::DenseGpu(lutmul::MatrixView::row_major(w.data(), k, m))
                                 .forward(lutmul::MatrixView::row_major(x.data(), n, k));
  double worst = 0;
  for (size_t i = 0; i < cpu.values.size(); ++i) worst = std::fmax(worst, std::fabs(cpu.values[i] - gpu.values[i]));
  std::printf("installed lutmul_cuda on %s: max |GPU - CPU| = %g\n", lutmul::cuda::device_name().c_str(), worst);
  return worst < 1e-3 ? 0 : 1;
}
