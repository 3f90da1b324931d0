// The exact f32 products every ratio is taken against, each library at its best on this CPU:
// exact_sgemm (OpenBLAS, kernel chosen by OPENBLAS_CORETYPE, which main() sets), exact_eigen
// (Eigen compiled with -march=native) and exact_onednn (oneDNN's sgemm, its kernel picked
// from the CPU's flags). Names: exact_<library>/N/K/M/threads; the fastest per shape is the
// baseline (bench/performance_table.py). fma_peak is their ceiling: one core's fused
// multiply-add rate at the widest vectors this build has.
#include <Eigen/Dense>
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <vector>

#include "bench_registry.h"

extern "C" void openblas_set_num_threads(int);

namespace {

struct Operands {
  int64_t n, k, m;
  std::vector<float> x, w, y;
  explicit Operands(const benchmark::State& state)
      : n(state.range(0)), k(state.range(1)), m(state.range(2)), x(structured_rows(n, k, 1)),
        w(structured_rows(k, m, 2)), y(static_cast<size_t>(n * m)) {}
};

void count_flops(benchmark::State& state, const Operands& o) {
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(o.n * o.k * o.m),
                                                 benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void exact_sgemm(benchmark::State& state) {
  Operands o(state);
  openblas_set_num_threads(static_cast<int>(state.range(3)));
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(o.n), static_cast<int>(o.m),
                static_cast<int>(o.k), 1.f, o.x.data(), static_cast<int>(o.k), o.w.data(), static_cast<int>(o.m), 0.f,
                o.y.data(), static_cast<int>(o.m));
    benchmark::DoNotOptimize(o.y.data());
    benchmark::ClobberMemory();
  }
  count_flops(state, o);
}

void exact_eigen(benchmark::State& state) {
  Operands o(state);
  Eigen::setNbThreads(static_cast<int>(state.range(3)));
  using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMatrix> x(o.x.data(), o.n, o.k), w(o.w.data(), o.k, o.m);
  Eigen::Map<RowMatrix> y(o.y.data(), o.n, o.m);
  for (auto _ : state) {
    y.noalias() = x * w;
    benchmark::DoNotOptimize(o.y.data());
    benchmark::ClobberMemory();
  }
  count_flops(state, o);
}

void exact_onednn(benchmark::State& state) {
  Operands o(state);
  omp_set_num_threads(static_cast<int>(state.range(3)));  // oneDNN's team: this thread's OpenMP setting
  for (auto _ : state) {
    dnnl_sgemm('N', 'N', o.n, o.m, o.k, 1.f, o.x.data(), o.k, o.w.data(), o.m, 0.f, o.y.data(), o.m);
    benchmark::DoNotOptimize(o.y.data());
    benchmark::ClobberMemory();
  }
  count_flops(state, o);
}

// Twelve independent chains of fused multiply-adds on registers, so neither the FMA latency
// nor memory limits the rate: one core's f32 peak at the clock it holds under FMA load (which
// AVX-512 lowers on some CPUs), the ceiling of every exact product above. The empty asm keeps
// each accumulator in its register and stops the loop from being folded.
#if defined(__AVX512F__)
using PeakVector = __m512;
inline PeakVector peak_fma(PeakVector a, PeakVector b, PeakVector c) { return _mm512_fmadd_ps(a, b, c); }
inline PeakVector peak_set(float v) { return _mm512_set1_ps(v); }
inline void peak_store(float* out, PeakVector v) { _mm512_storeu_ps(out, v); }
#elif defined(__AVX2__) && defined(__FMA__)
using PeakVector = __m256;
inline PeakVector peak_fma(PeakVector a, PeakVector b, PeakVector c) { return _mm256_fmadd_ps(a, b, c); }
inline PeakVector peak_set(float v) { return _mm256_set1_ps(v); }
inline void peak_store(float* out, PeakVector v) { _mm256_storeu_ps(out, v); }
#endif

void fma_peak(benchmark::State& state) {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  constexpr int64_t kSteps = 4096;
  constexpr double kLanes = sizeof(PeakVector) / sizeof(float);
  const PeakVector b = peak_set(0.999999f), c = peak_set(1e-7f);
  PeakVector a0 = peak_set(1.f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0,
             a10 = a0, a11 = a0;
  for (auto _ : state)
    for (int64_t i = 0; i < kSteps; ++i) {
      a0 = peak_fma(a0, b, c), a1 = peak_fma(a1, b, c), a2 = peak_fma(a2, b, c), a3 = peak_fma(a3, b, c);
      a4 = peak_fma(a4, b, c), a5 = peak_fma(a5, b, c), a6 = peak_fma(a6, b, c), a7 = peak_fma(a7, b, c);
      a8 = peak_fma(a8, b, c), a9 = peak_fma(a9, b, c), a10 = peak_fma(a10, b, c), a11 = peak_fma(a11, b, c);
      asm volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6), "+x"(a7), "+x"(a8),
                   "+x"(a9), "+x"(a10), "+x"(a11));
    }
  float lanes[3 * sizeof(PeakVector) / sizeof(float)];
  peak_store(lanes, a0);
  peak_store(lanes + static_cast<int64_t>(kLanes), a5);
  peak_store(lanes + 2 * static_cast<int64_t>(kLanes), a11);
  benchmark::DoNotOptimize(lanes);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * kLanes * 12 * kSteps, benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
#else
  state.SkipWithError("fma_peak needs AVX2 with FMA or AVX-512 in this build");
#endif
}

}  // namespace

void register_fma_peak() { benchmark::RegisterBenchmark("fma_peak", fma_peak); }

void register_exact_products(int64_t n, int64_t k, int64_t m, int64_t threads) {
  benchmark::RegisterBenchmark("exact_sgemm", exact_sgemm)->Args({n, k, m, threads});
  benchmark::RegisterBenchmark("exact_eigen", exact_eigen)->Args({n, k, m, threads});
  benchmark::RegisterBenchmark("exact_onednn", exact_onednn)->Args({n, k, m, threads});
}
