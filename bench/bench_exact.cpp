// The exact f32 products every ratio is taken against, each library at its best on this CPU:
// exact_sgemm (OpenBLAS, kernel chosen by OPENBLAS_CORETYPE, which main() sets), exact_eigen
// (Eigen compiled with -march=native) and exact_onednn (oneDNN's sgemm, its kernel picked
// from the CPU's flags). Names: exact_<library>/N/K/M/threads; the fastest per shape is the
// baseline (bench/performance_table.py).
#include <Eigen/Dense>
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

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

}  // namespace

void register_exact_products(int64_t n, int64_t k, int64_t m, int64_t threads) {
  benchmark::RegisterBenchmark("exact_sgemm", exact_sgemm)->Args({n, k, m, threads});
  benchmark::RegisterBenchmark("exact_eigen", exact_eigen)->Args({n, k, m, threads});
  benchmark::RegisterBenchmark("exact_onednn", exact_onednn)->Args({n, k, m, threads});
}
