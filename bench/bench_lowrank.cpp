// Google Benchmark: the low-rank and LoRA operators, against the exact product in the same run.
//
//   build/bench/lutmul_bench --benchmark_filter='lowrank|lora|exact_sgemm/(512|256)/1024/1024/1$'
//
// Names:
//   lowrank_linear/N/K/M/rank/threads          W (structured) factored by truncated SVD
//   lora_forward/N/K/M/r/adapters/threads      dense base plus adapters; the N rows are spread
//                                              evenly over the adapters in shuffled order
//   lora_base/N/K/M/threads                    the dense base alone (DenseLinear)
//   lora_adapter_term_grouped/N/K/M/r/adapters/threads
//                                              the adapter term alone, rows grouped by adapter
//                                              through LoraLinear's kernel
//   lora_adapter_term_rowwise/...              the same term one row at a time: two BLAS sgemv
//                                              per row (the loop a straightforward version runs)
//   lora_adapter_term_blas_grouped/...         rows grouped by adapter, gathered, and two BLAS
//                                              sgemm per group (the grouping without our kernel)
// The exact baseline for lowrank_linear is the fastest exact_*/N/K/M/threads (bench_exact.cpp).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "bench_registry.h"
#include "lutmul/lutmul.h"

extern "C" void openblas_set_num_threads(int);

namespace {

using lutmul::MatrixView;

void count_macs(benchmark::State& state, double macs) {
  state.counters["GMAC/s"] =
      benchmark::Counter(macs, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// The SVD of a 1024 × 1024 weight takes seconds: build each operator once per process.
const lutmul::LowRankLinear& cached_low_rank(int64_t k, int64_t m, int64_t rank) {
  static std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<lutmul::LowRankLinear>> cache;
  auto& op = cache[{k, m, rank}];
  if (!op) {
    const std::vector<float> w = structured_rows(k, m, 2);
    lutmul::LowRankConfig config;
    config.rank = rank;
    op = std::make_unique<lutmul::LowRankLinear>(MatrixView::row_major(w.data(), k, m), nullptr, config);
  }
  return *op;
}

void lowrank_linear(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2), rank = state.range(3);
  lutmul::set_num_threads(static_cast<int>(state.range(4)));
  const lutmul::LowRankLinear& op = cached_low_rank(k, m, rank);
  const std::vector<float> x = structured_rows(n, k, 1);
  std::vector<float> y(static_cast<size_t>(n * m));
  for (auto _ : state) {
    op.forward(MatrixView::row_major(x.data(), n, k), y.data(), m);
    benchmark::DoNotOptimize(y.data());
  }
  count_macs(state, static_cast<double>(n) * op.multiply_adds_per_row());
}

// A dense base with `adapters` adapters of rank r, and N row ids spread evenly over them.
struct LoraSetup {
  std::shared_ptr<const lutmul::DenseLinear> base;
  std::unique_ptr<lutmul::LoraLinear> op;
  std::vector<int32_t> ids;
  std::vector<float> x;
};

const LoraSetup& cached_lora(int64_t n, int64_t k, int64_t m, int64_t r, int64_t adapters) {
  static std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>, std::unique_ptr<LoraSetup>> cache;
  auto& setup = cache[{n, k, m, r, adapters}];
  if (!setup) {
    setup = std::make_unique<LoraSetup>();
    const std::vector<float> w = structured_rows(k, m, 2);
    setup->base = std::make_shared<lutmul::DenseLinear>(MatrixView::row_major(w.data(), k, m));
    setup->op = std::make_unique<lutmul::LoraLinear>(setup->base);
    std::mt19937_64 rng(3);
    std::normal_distribution<float> normal(0.f, 0.05f);
    std::vector<int32_t> ids;
    for (int64_t a = 0; a < adapters; ++a) {
      std::vector<float> A(static_cast<size_t>(k * r)), B(static_cast<size_t>(r * m));
      for (auto& v : A) v = normal(rng);
      for (auto& v : B) v = normal(rng);
      ids.push_back(setup->op->add_adapter("adapter" + std::to_string(a), MatrixView::row_major(A.data(), k, r),
                                           MatrixView::row_major(B.data(), r, m), 2.f * static_cast<float>(r)));
    }
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    setup->ids.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) setup->ids[order[i]] = ids[i % adapters];
    setup->x = structured_rows(n, k, 1);
  }
  return *setup;
}

// Multiply-adds of the adapter terms: r·(K + M) per row.
double adapter_macs(int64_t n, int64_t k, int64_t m, int64_t r) { return static_cast<double>(n * r * (k + m)); }

void lora_forward(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2), r = state.range(3);
  lutmul::set_num_threads(static_cast<int>(state.range(5)));
  const LoraSetup& s = cached_lora(n, k, m, r, state.range(4));
  std::vector<float> y(static_cast<size_t>(n * m));
  for (auto _ : state) {
    s.op->forward(MatrixView::row_major(s.x.data(), n, k), s.ids.data(), y.data(), m);
    benchmark::DoNotOptimize(y.data());
  }
  count_macs(state, static_cast<double>(n * k * m) + adapter_macs(n, k, m, r));
}

void lora_base(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  lutmul::set_num_threads(static_cast<int>(state.range(3)));
  const LoraSetup& s = cached_lora(n, k, m, 16, 16);
  std::vector<float> y(static_cast<size_t>(n * m));
  for (auto _ : state) {
    s.base->forward(MatrixView::row_major(s.x.data(), n, k), y.data(), m);
    benchmark::DoNotOptimize(y.data());
  }
  count_macs(state, static_cast<double>(n * k * m));
}

void lora_adapter_term_grouped(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2), r = state.range(3);
  lutmul::set_num_threads(static_cast<int>(state.range(5)));
  const LoraSetup& s = cached_lora(n, k, m, r, state.range(4));
  std::vector<float> y(static_cast<size_t>(n * m), 0.f);
  for (auto _ : state) {
    s.op->add_adapter_terms(MatrixView::row_major(s.x.data(), n, k), s.ids.data(), y.data(), m);
    benchmark::DoNotOptimize(y.data());
  }
  count_macs(state, adapter_macs(n, k, m, r));
}

void lora_adapter_term_rowwise(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2), r = state.range(3);
  openblas_set_num_threads(static_cast<int>(state.range(5)));
  const LoraSetup& s = cached_lora(n, k, m, r, state.range(4));
  std::vector<std::shared_ptr<const lutmul::LoraAdapter>> adapters;
  std::vector<std::vector<float>> b_rows;  // row-major B, as BLAS wants it
  for (const std::string& name : s.op->adapter_names()) {
    adapters.push_back(s.op->adapter(name));
    b_rows.push_back(adapters.back()->b());
  }
  std::vector<float> y(static_cast<size_t>(n * m), 0.f), t(static_cast<size_t>(r));
  for (auto _ : state) {
    for (int64_t i = 0; i < n; ++i) {
      const lutmul::LoraAdapter& a = *adapters[s.ids[i]];
      cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<int>(k), static_cast<int>(r), 1.f, a.a.data(),
                  static_cast<int>(r), s.x.data() + i * k, 1, 0.f, t.data(), 1);
      cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<int>(r), static_cast<int>(m), a.scale(), b_rows[s.ids[i]].data(),
                  static_cast<int>(m), t.data(), 1, 1.f, y.data() + i * m, 1);
    }
    benchmark::DoNotOptimize(y.data());
  }
  count_macs(state, adapter_macs(n, k, m, r));
}

void lora_adapter_term_blas_grouped(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2), r = state.range(3);
  const int64_t count = state.range(4);
  openblas_set_num_threads(static_cast<int>(state.range(5)));
  const LoraSetup& s = cached_lora(n, k, m, r, count);
  std::vector<std::shared_ptr<const lutmul::LoraAdapter>> adapters;
  std::vector<std::vector<float>> b_rows;
  for (const std::string& name : s.op->adapter_names()) {
    adapters.push_back(s.op->adapter(name));
    b_rows.push_back(adapters.back()->b());
  }
  std::vector<float> y(static_cast<size_t>(n * m), 0.f), xg(static_cast<size_t>(n * k)), tg(static_cast<size_t>(n * r)),
      yg(static_cast<size_t>(n * m));
  std::vector<int64_t> rows;
  for (auto _ : state) {
    for (int64_t a = 0; a < count; ++a) {
      rows.clear();
      for (int64_t i = 0; i < n; ++i)
        if (s.ids[i] == a) rows.push_back(i);
      const auto g = static_cast<int64_t>(rows.size());
      for (int64_t i = 0; i < g; ++i) std::copy_n(s.x.data() + rows[i] * k, k, xg.data() + i * k);
      const lutmul::LoraAdapter& ad = *adapters[a];
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(g), static_cast<int>(r), static_cast<int>(k),
                  1.f, xg.data(), static_cast<int>(k), ad.a.data(), static_cast<int>(r), 0.f, tg.data(), static_cast<int>(r));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(g), static_cast<int>(m), static_cast<int>(r),
                  ad.scale(), tg.data(), static_cast<int>(r), b_rows[a].data(), static_cast<int>(m), 0.f, yg.data(),
                  static_cast<int>(m));
      for (int64_t i = 0; i < g; ++i)
        for (int64_t j = 0; j < m; ++j) y[rows[i] * m + j] += yg[i * m + j];
    }
    benchmark::DoNotOptimize(y.data());
  }
  count_macs(state, adapter_macs(n, k, m, r));
}

}  // namespace

void register_lowrank_benchmarks() {
  for (int64_t t : {1, 2}) {
    for (int64_t rank : {64, 128, 256})
      benchmark::RegisterBenchmark("lowrank_linear", lowrank_linear)->Args({512, 1024, 1024, rank, t});
    benchmark::RegisterBenchmark("lora_base", lora_base)->Args({256, 1024, 1024, t});
    for (int64_t adapters : {1, 16}) {
      const std::vector<int64_t> args = {256, 1024, 1024, 16, adapters, t};
      benchmark::RegisterBenchmark("lora_forward", lora_forward)->Args(args);
      benchmark::RegisterBenchmark("lora_adapter_term_grouped", lora_adapter_term_grouped)->Args(args);
      benchmark::RegisterBenchmark("lora_adapter_term_rowwise", lora_adapter_term_rowwise)->Args(args);
      benchmark::RegisterBenchmark("lora_adapter_term_blas_grouped", lora_adapter_term_blas_grouped)->Args(args);
    }
  }
}
