// Google Benchmark: the operators of the shared contract against the exact product, same run.
// Names: int8_linear/N/K/M/threads, sparse_linear/N/K/M/sparsity%/threads,
// sparse24_linear/N/K/M/threads, bf16_linear/N/K/M/threads, dense_linear/N/K/M/threads (DenseLinear, the exact operator),
// int8_own/N/K/M/threads and int8_onednn/N/K/M/threads (Int8Linear's two backends, forced),
// and the exact products of the same shapes (bench_exact.cpp).
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "bench_registry.h"
#include "lutmul/lutmul.h"

namespace {

// Times op.forward on N structured rows; reports multiply-adds per second (`macs` per row).
void time_forward(benchmark::State& state, const lutmul::LinearOperator& op, int64_t n, double macs_per_row) {
  const std::vector<float> x = structured_rows(n, op.input_dim(), 1);
  std::vector<float> y(static_cast<size_t>(n * op.output_dim()));
  for (auto _ : state) {
    op.forward(lutmul::MatrixView::row_major(x.data(), n, op.input_dim()), y.data(), op.output_dim());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(n) * macs_per_row,
                                                benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void int8_linear(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  lutmul::set_num_threads(static_cast<int>(state.range(3)));
  const std::vector<float> w = structured_rows(k, m, 2);
  const lutmul::Int8Linear op(lutmul::MatrixView::row_major(w.data(), k, m));
  time_forward(state, op, n, op.multiply_adds_per_row());
}

// Int8Linear with smoothing (α = 0.6, calibrated on the rows it multiplies): what the
// multiply by 1/s[k] in the quantiser costs against int8_linear at the same shape.
void int8_smoothed(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  lutmul::set_num_threads(static_cast<int>(state.range(3)));
  const std::vector<float> w = structured_rows(k, m, 2), x = structured_rows(n, k, 1);
  lutmul::Int8Config config;
  config.smoothing = 0.6;
  const lutmul::MatrixView calibration = lutmul::MatrixView::row_major(x.data(), n, k);
  const lutmul::Int8Linear op(lutmul::MatrixView::row_major(w.data(), k, m), nullptr, config, &calibration);
  time_forward(state, op, n, op.multiply_adds_per_row());
}

// Int8Linear with its backend forced (the automatic choice is int8_linear).
void int8_backend(benchmark::State& state, lutmul::Int8Backend backend) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  lutmul::set_num_threads(static_cast<int>(state.range(3)));
  const std::vector<float> w = structured_rows(k, m, 2);
  lutmul::Int8Config config;
  config.backend = backend;
  std::unique_ptr<lutmul::Int8Linear> op;
  try {
    op = std::make_unique<lutmul::Int8Linear>(lutmul::MatrixView::row_major(w.data(), k, m), nullptr, config);
  } catch (const lutmul::Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  state.SetLabel(op->path());
  time_forward(state, *op, n, op->multiply_adds_per_row());
}

void int8_own(benchmark::State& state) { int8_backend(state, lutmul::Int8Backend::own_kernels); }
void int8_onednn(benchmark::State& state) { int8_backend(state, lutmul::Int8Backend::onednn); }

void dense_linear(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  lutmul::set_num_threads(static_cast<int>(state.range(3)));
  const std::vector<float> w = structured_rows(k, m, 2);
  const lutmul::DenseLinear op(lutmul::MatrixView::row_major(w.data(), k, m));
  time_forward(state, op, n, op.multiply_adds_per_row());
}

void bf16_linear(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  lutmul::set_num_threads(static_cast<int>(state.range(3)));
  const std::vector<float> w = structured_rows(k, m, 2);
  const lutmul::Bf16Linear op(lutmul::MatrixView::row_major(w.data(), k, m));
  time_forward(state, op, n, op.multiply_adds_per_row());
}

// Counts the kept multiply-adds only, so GMAC/s is the useful rate.
void sparse_linear(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  lutmul::set_num_threads(static_cast<int>(state.range(4)));
  const std::vector<float> w = structured_rows(k, m, 2);
  lutmul::SparseConfig config;
  config.sparsity = static_cast<double>(state.range(3)) / 100.0;
  const lutmul::SparseLinear op(lutmul::MatrixView::row_major(w.data(), k, m), nullptr, config);
  time_forward(state, op, n, op.multiply_adds_per_row());
}

void sparse24_linear(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  lutmul::set_num_threads(static_cast<int>(state.range(3)));
  const std::vector<float> w = structured_rows(k, m, 2);
  const lutmul::Sparse24Linear op(lutmul::MatrixView::row_major(w.data(), k, m));
  time_forward(state, op, n, op.multiply_adds_per_row());
}

}  // namespace

void register_operator_benchmarks() {
  // The MiniLM feed-forward layers (2,048 tokens): bfloat16 against the exact products.
  for (int64_t t : {1, 2})
    for (const auto& [k, m] : {std::pair<int64_t, int64_t>{1536, 384}, {384, 1536}}) {
      register_exact_products(2048, k, m, t);
      benchmark::RegisterBenchmark("dense_linear", dense_linear)->Args({2048, k, m, t});
      benchmark::RegisterBenchmark("bf16_linear", bf16_linear)->Args({2048, k, m, t});
      // A sentence's rows, where the products read their weights more than they multiply.
      benchmark::RegisterBenchmark("dense_linear", dense_linear)->Args({16, k, m, t});
      benchmark::RegisterBenchmark("bf16_linear", bf16_linear)->Args({16, k, m, t});
      for (int64_t n : {32, 256, 2048}) {
        benchmark::RegisterBenchmark("int8_own", int8_own)->Args({n, k, m, t});
        benchmark::RegisterBenchmark("int8_onednn", int8_onednn)->Args({n, k, m, t});
      }
    }
  // MiniLM's three layer shapes at a runtime call's rows (64 sentences), plain and smoothed.
  for (const auto& [k, m] : {std::pair<int64_t, int64_t>{384, 384}, {384, 1536}, {1536, 384}}) {
    benchmark::RegisterBenchmark("int8_linear", int8_linear)->Args({1408, k, m, 1});
    benchmark::RegisterBenchmark("int8_smoothed", int8_smoothed)->Args({1408, k, m, 1});
  }
  for (int64_t t : {1, 2})
    for (int64_t n : {1, 512}) {
      register_exact_products(n, 1024, 1024, t);
      benchmark::RegisterBenchmark("dense_linear", dense_linear)->Args({n, 1024, 1024, t});
      benchmark::RegisterBenchmark("int8_linear", int8_linear)->Args({n, 1024, 1024, t});
    }
  for (int64_t t : {1, 2}) {
    register_exact_products(256, 1024, 1024, t);
    benchmark::RegisterBenchmark("dense_linear", dense_linear)->Args({256, 1024, 1024, t});
    for (int64_t sparsity : {50, 90, 95})
      benchmark::RegisterBenchmark("sparse_linear", sparse_linear)->Args({256, 1024, 1024, sparsity, t});
    benchmark::RegisterBenchmark("sparse24_linear", sparse24_linear)->Args({256, 1024, 1024, t});
  }
}
