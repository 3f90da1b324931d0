// Google Benchmark: MADDNESS stages and end to end against the exact product, same run.
//
//   build/bench/lutmul_bench --benchmark_filter='N:10016/' --benchmark_format=json
//
// Names: maddness_matmul/N/D/M/C/threads (row-major A), maddness_matmul_colmajor/...,
// maddness_encode/N/D/C/threads, maddness_encode_colmajor/..., stream_read/N/D (plain loads
// of all of a row-major A: the bound for its encoder), maddness_scan/N/M/C/threads
// (exact accumulation; _averaged for the other mode; N = 1,024 is the in-cache rate;
// _k64 for 64-leaf trees, also maddness_matmul_colmajor_k64; _bf16 and _sums for the narrow
// outputs, bfloat16 Y and the integer sums),
// store_y/N/M (plain stores of all of Y: the bound for the scan's output),
// maddness_produced/N/D/M/C/threads (rows encoded as a LayerNorm writes them), against
// maddness_after_producer (the LayerNorm, then matmul) and layer_norm_rows (the LayerNorm alone),
// maddness_gelu_fused and _unfused/N/D/M/C/threads (a layer with GELU after it, the GELU in the
// scan's epilogue or in a pass of its own), maddness_fit/N/D/C/threads, and the
// exact baselines exact_sgemm, exact_eigen and exact_onednn/N/D/M/threads (bench_exact.cpp,
// the kernels each picked printed in the context); the fastest one is the baseline.
// Tables are prebuilt; A is float, Y is float.
//
// Debian's OpenBLAS takes this CPU for an old one unless OPENBLAS_CORETYPE is set, which
// must happen before the library loads: main() re-executes itself with it set.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "bench_registry.h"
#include "lutmul/lutmul.h"

extern "C" char* openblas_get_corename(void);
extern "C" char* openblas_get_config(void);
extern "C" void openblas_set_num_threads(int);

namespace {

using lutmul::Maddness;
using lutmul::MatrixView;

std::vector<float> weights(int64_t d, int64_t m) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> b(static_cast<size_t>(d * m));
  for (auto& v : b) v = normal(rng);
  return b;
}

const std::vector<float>& cached_structured_rows(int64_t n, int64_t d, bool col_major) {
  static std::map<std::tuple<int64_t, int64_t, bool>, std::vector<float>> cache;
  auto& a = cache[{n, d, col_major}];
  if (a.empty()) {
    a = structured_rows(n, d, 1);
    if (col_major) {
      std::vector<float> t(a.size());
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < d; ++j) t[j * n + i] = a[i * d + j];
      a.swap(t);
    }
  }
  return a;
}

// One trained model per (D, M, C, leaves), trained on 4096 rows.
const Maddness& cached_model(int64_t d, int64_t m, int c, int leaves = 16) {
  static std::map<std::tuple<int64_t, int64_t, int, int>, std::unique_ptr<Maddness>> cache;
  auto& model = cache[{d, m, c, leaves}];
  if (!model) {
    lutmul::MaddnessConfig config;
    config.ncodebooks = c;
    config.leaves = leaves;
    model = std::make_unique<Maddness>(config);
    const std::vector<float> train = structured_rows(4096, d, 2);
    const std::vector<float> b = weights(d, m);
    model->fit(MatrixView::row_major(train.data(), 4096, d), MatrixView::row_major(b.data(), d, m));
  }
  return *model;
}

MatrixView view(int64_t n, int64_t d, bool col_major) {
  const float* a = cached_structured_rows(n, d, col_major).data();
  return col_major ? MatrixView::col_major(a, n, d) : MatrixView::row_major(a, n, d);
}

// Bytes a row-major encoder must stream: every 64-byte line holding a split column.
double touched_bytes(const Maddness& model, int64_t n, int64_t d, bool col_major) {
  std::set<int64_t> columns;
  for (int c = 0; c < model.ncodebooks(); ++c)
    for (int t = 0; t < 4; ++t) columns.insert(model.split_dim(c, t));
  if (col_major) return 4.0 * static_cast<double>(columns.size()) * static_cast<double>(n);
  std::set<int64_t> lines;  // rows are 64-byte aligned when D is a multiple of 16
  for (int64_t j : columns) lines.insert(j / 16);
  (void)d;
  return 64.0 * static_cast<double>(lines.size()) * static_cast<double>(n);
}

void matmul(benchmark::State& state, bool col_major, int leaves = 16) {
  const int64_t n = state.range(0), d = state.range(1), m = state.range(2);
  const int c = static_cast<int>(state.range(3));
  lutmul::set_num_threads(static_cast<int>(state.range(4)));
  const Maddness& model = cached_model(d, m, c, leaves);
  const MatrixView a = view(n, d, col_major);
  std::vector<float> y(static_cast<size_t>(n * m));
  for (auto _ : state) {
    model.matmul(a, y.data(), m);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["rows/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

void encode(benchmark::State& state, bool col_major) {
  const int64_t n = state.range(0), d = state.range(1);
  const int c = static_cast<int>(state.range(2));
  lutmul::set_num_threads(static_cast<int>(state.range(3)));
  const Maddness& model = cached_model(d, 10, c);
  const MatrixView a = view(n, d, col_major);
  lutmul::EncodedRows codes;
  for (auto _ : state) {
    model.encode(a, codes);
    benchmark::DoNotOptimize(codes.packed_data());
  }
  state.counters["touched_bytes/s"] =
      benchmark::Counter(touched_bytes(model, n, d, col_major), benchmark::Counter::kIsIterationInvariantRate);
}

// What the scan writes: float Y, or the narrow outputs (bfloat16 Y, the integer sums).
enum class Output { f32, bf16, sums };

void scan(benchmark::State& state, lutmul::Accumulation accumulation, int leaves = 16, Output output = Output::f32) {
  const int64_t n = state.range(0), m = state.range(1), d = 512;
  const int c = static_cast<int>(state.range(2));
  lutmul::set_num_threads(static_cast<int>(state.range(3)));
  Maddness model = cached_model(d, m, c, leaves);
  model.set_accumulation(accumulation);
  const lutmul::EncodedRows codes = model.encode(view(n, d, true));
  std::vector<float> y(static_cast<size_t>(output == Output::f32 ? n * m : 0));
  std::vector<uint16_t> y16(static_cast<size_t>(output == Output::f32 ? 0 : n * m));
  for (auto _ : state) {
    if (output == Output::f32) model.scan(codes, y.data(), m);
    if (output == Output::bf16) model.scan_bf16(codes, y16.data(), m);
    if (output == Output::sums) model.scan_sums(codes, y16.data(), m);
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(y16.data());
    benchmark::ClobberMemory();
  }
  state.counters["lookups/s"] = benchmark::Counter(static_cast<double>(n * m * c), benchmark::Counter::kIsIterationInvariantRate);
}

void fit(benchmark::State& state) {
  const int64_t n = state.range(0), d = state.range(1);
  const int c = static_cast<int>(state.range(2));
  lutmul::set_num_threads(static_cast<int>(state.range(3)));
  const std::vector<float>& a = cached_structured_rows(n, d, false);
  lutmul::MaddnessConfig config;
  config.ncodebooks = c;
  for (auto _ : state) {
    Maddness model(config);
    model.fit_encoder(MatrixView::row_major(a.data(), n, d));
    benchmark::DoNotOptimize(model.prototypes().data());
  }
}

// The bound for a row-major encoder: stream every byte of A once with plain loads.
void stream_read(benchmark::State& state) {
  const int64_t n = state.range(0), d = state.range(1);
  const std::vector<float>& a = cached_structured_rows(n, d, false);
  const auto* words = reinterpret_cast<const uint32_t*>(a.data());
  const size_t count = a.size();
  for (auto _ : state) {
    uint32_t acc = 0;  // integer xor: vectorised without reassociating floats
    for (size_t i = 0; i < count; ++i) acc ^= words[i];
    benchmark::DoNotOptimize(acc);
  }
  state.counters["bytes/s"] =
      benchmark::Counter(4.0 * static_cast<double>(count), benchmark::Counter::kIsIterationInvariantRate);
}

// The bound for the scan's output: write every float of Y (N × M) once with plain stores.
void store_y(benchmark::State& state) {
  const int64_t n = state.range(0), m = state.range(1);
  std::vector<float> y(static_cast<size_t>(n * m));
  float value = 0.f;
  for (auto _ : state) {
    value += 1.f;  // a new value each time, so no store can be skipped
    std::fill(y.begin(), y.end(), value);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["bytes/s"] = benchmark::Counter(4.0 * static_cast<double>(n * m), benchmark::Counter::kIsIterationInvariantRate);
}

// A layer with GELU after it (MiniLM's feed-forward in: 2,048 tokens, 384 → 1,536) through
// forward_with: fused (the scan applies GELU as it stores Y) or not (the operator hidden behind
// a wrapper that does not fuse, so forward_with runs forward and then a GELU pass over Y).
class NotFused final : public lutmul::LinearOperator {
 public:
  explicit NotFused(const lutmul::LinearOperator& inner) : inner_(inner) {}
  std::string kind() const override { return inner_.kind(); }
  int64_t input_dim() const override { return inner_.input_dim(); }
  int64_t output_dim() const override { return inner_.output_dim(); }
  void forward(const MatrixView& X, float* Y, int64_t ldy) const override { inner_.forward(X, Y, ldy); }
  using lutmul::LinearOperator::forward;
  int64_t bytes() const override { return inner_.bytes(); }
  double multiply_adds_per_row() const override { return inner_.multiply_adds_per_row(); }

 private:
  const lutmul::LinearOperator& inner_;
};

void gelu_layer(benchmark::State& state, bool fused) {
  const int64_t n = state.range(0), d = state.range(1), m = state.range(2);
  const int c = static_cast<int>(state.range(3));
  lutmul::set_num_threads(static_cast<int>(state.range(4)));
  static std::map<std::tuple<int64_t, int64_t, int>, std::unique_ptr<lutmul::MaddnessLinear>> cache;
  auto& op = cache[{d, m, c}];
  if (!op) {
    lutmul::MaddnessConfig config;
    config.ncodebooks = c;
    const std::vector<float> train = structured_rows(4096, d, 3), b = weights(d, m);
    op = std::make_unique<lutmul::MaddnessLinear>(MatrixView::row_major(b.data(), d, m), nullptr,
                                                  MatrixView::row_major(train.data(), 4096, d), config);
  }
  const NotFused unfused(*op);
  const lutmul::LinearOperator& layer = fused ? static_cast<const lutmul::LinearOperator&>(*op) : unfused;
  const MatrixView a = view(n, d, false);
  std::vector<float> y(static_cast<size_t>(n * m));
  const lutmul::Epilogue gelu{lutmul::Epilogue::Activation::gelu, false};
  for (auto _ : state) {
    layer.forward_with(a, y.data(), m, gelu);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["rows/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

// A producer of A as a runtime has one: LayerNorm (unit gain, no shift) of source rows S
// into A, rows [begin, end). The same code in every benchmark that uses it.
void layer_norm_rows(const float* s, float* a, int64_t d, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float* in = s + i * d;
    float* out = a + i * d;
    // Eight running sums (d is a multiple of 8 here), so the compiler keeps them in a vector.
    float sums[8] = {}, squares[8] = {};
    for (int64_t j = 0; j < d; j += 8)
      for (int k = 0; k < 8; ++k) sums[k] += in[j + k];
    float sum = 0.f;
    for (float v : sums) sum += v;
    const float mean = sum / static_cast<float>(d);
    for (int64_t j = 0; j < d; j += 8)
      for (int k = 0; k < 8; ++k) squares[k] += (in[j + k] - mean) * (in[j + k] - mean);
    float square_sum = 0.f;
    for (float v : squares) square_sum += v;
    const float inv = 1.f / std::sqrt(square_sum / static_cast<float>(d) + 1e-12f);
    for (int64_t j = 0; j < d; ++j) out[j] = (in[j] - mean) * inv;
  }
}

// Rows produced by layer_norm_rows, then Y = A·B (row-major A): encoded as each 64-row
// block is written (maddness_produced, Maddness::matmul_produced), or in a pass of its own
// after all of A (maddness_after_producer: the producer over all rows, then matmul), or the
// producer alone (layer_norm_rows).
enum class Produced { fused, after, producer_only };

void produced(benchmark::State& state, Produced how) {
  const int64_t n = state.range(0), d = state.range(1), m = state.range(2);
  const int c = static_cast<int>(state.range(3));
  const int threads = static_cast<int>(state.range(4));
  lutmul::set_num_threads(threads);
  const Maddness& model = cached_model(d, m, c);
  const float* source = cached_structured_rows(n, d, false).data();
  std::vector<float> a(static_cast<size_t>(n * d)), y(static_cast<size_t>(n * m));
  const MatrixView view = MatrixView::row_major(a.data(), n, d);
  const auto produce = [&](int64_t begin, int64_t end) { layer_norm_rows(source, a.data(), d, begin, end); };
  const auto produce_all = [&] {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t block = 0; block < (n + 63) / 64; ++block) produce(block * 64, std::min(n, block * 64 + 64));
  };
  for (auto _ : state) {
    if (how == Produced::fused) {
      model.matmul_produced(view, produce, y.data(), m);
    } else {
      produce_all();
      if (how == Produced::after) model.matmul(view, y.data(), m);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
  }
  state.counters["rows/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  for (int64_t t : {1, 2}) {
    benchmark::RegisterBenchmark("maddness_gelu_fused", [](benchmark::State& s) { gelu_layer(s, true); })->Args({2048, 384, 1536, 16, t});
    benchmark::RegisterBenchmark("maddness_gelu_unfused", [](benchmark::State& s) { gelu_layer(s, false); })->Args({2048, 384, 1536, 16, t});
  }
  // The scan with Y and the codes in L2 (the in-cache rate), and the store bound of Y.
  for (int64_t t : {1, 2})
    for (int64_t m : {10, 100})
      for (int64_t c : {8, 16, 32})
        benchmark::RegisterBenchmark("maddness_scan", [](benchmark::State& s) { scan(s, lutmul::Accumulation::exact); })->Args({1024, m, c, t});
  for (int64_t m : {10, 100}) {
    benchmark::RegisterBenchmark("maddness_scan_bf16", [](benchmark::State& s) { scan(s, lutmul::Accumulation::exact, 16, Output::bf16); })->Args({1024, m, 16, 1});
    benchmark::RegisterBenchmark("maddness_scan_sums", [](benchmark::State& s) { scan(s, lutmul::Accumulation::exact, 16, Output::sums); })->Args({1024, m, 16, 1});
  }
  for (int64_t n : {1024, 10016, 57600})
    for (int64_t m : {10, 100}) benchmark::RegisterBenchmark("store_y", store_y)->Args({n, m});
  // The row-major encoder with A in L2 (192 rows of 512 floats, 384 KiB): its rate without
  // the memory's, as after a producer (maddness_produced).
  for (int64_t c : {8, 16, 32})
    benchmark::RegisterBenchmark("maddness_encode", [](benchmark::State& s) { encode(s, false); })->Args({192, 512, c, 1});
  // 64-leaf trees: the scan in cache and at full size, and end to end (column-major A).
  for (int64_t t : {1, 2})
    for (int64_t n : {1024, 10016})
      for (int64_t m : {10, 100})
        for (int64_t c : {8, 16, 32}) {
          benchmark::RegisterBenchmark("maddness_scan_k64", [](benchmark::State& s) { scan(s, lutmul::Accumulation::exact, 64); })->Args({n, m, c, t});
          if (n != 1024)
            benchmark::RegisterBenchmark("maddness_matmul_colmajor_k64", [](benchmark::State& s) { matmul(s, true, 64); })->Args({n, 512, m, c, t});
        }
  const std::vector<int64_t> rows = {10016, 57600};
  for (int64_t n : rows)
    for (int64_t t : {1, 2}) {
      for (int64_t m : {10, 100}) {
        register_exact_products(n, 512, m, t);
        for (int64_t c : {8, 16, 32}) {
          benchmark::RegisterBenchmark("maddness_matmul", [](benchmark::State& s) { matmul(s, false); })->Args({n, 512, m, c, t});
          benchmark::RegisterBenchmark("maddness_matmul_colmajor", [](benchmark::State& s) { matmul(s, true); })->Args({n, 512, m, c, t});
          benchmark::RegisterBenchmark("maddness_scan", [](benchmark::State& s) { scan(s, lutmul::Accumulation::exact); })->Args({n, m, c, t});
          benchmark::RegisterBenchmark("maddness_scan_averaged", [](benchmark::State& s) { scan(s, lutmul::Accumulation::averaged); })->Args({n, m, c, t});
        }
        benchmark::RegisterBenchmark("maddness_scan_bf16", [](benchmark::State& s) { scan(s, lutmul::Accumulation::exact, 16, Output::bf16); })->Args({n, m, 16, t});
        benchmark::RegisterBenchmark("maddness_scan_sums", [](benchmark::State& s) { scan(s, lutmul::Accumulation::exact, 16, Output::sums); })->Args({n, m, 16, t});
      }
      if (t == 1) benchmark::RegisterBenchmark("stream_read", stream_read)->Args({n, 512});
      for (int64_t c : {8, 16, 32}) {
        benchmark::RegisterBenchmark("maddness_encode", [](benchmark::State& s) { encode(s, false); })->Args({n, 512, c, t});
        benchmark::RegisterBenchmark("maddness_encode_colmajor", [](benchmark::State& s) { encode(s, true); })->Args({n, 512, c, t});
      }
    }
  for (int64_t t : {1, 2})
    for (int64_t m : {10, 100}) {
      benchmark::RegisterBenchmark("maddness_produced", [](benchmark::State& s) { produced(s, Produced::fused); })->Args({10016, 512, m, 16, t});
      benchmark::RegisterBenchmark("maddness_after_producer", [](benchmark::State& s) { produced(s, Produced::after); })->Args({10016, 512, m, 16, t});
      if (m == 10) benchmark::RegisterBenchmark("layer_norm_rows", [](benchmark::State& s) { produced(s, Produced::producer_only); })->Args({10016, 512, m, 16, t});
    }
  for (int64_t t : {1, 2})
    for (int64_t c : {8, 16, 32}) benchmark::RegisterBenchmark("maddness_fit", fit)->Args({10000, 512, c, t})->Unit(benchmark::kMillisecond);
}

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr && std::getenv("LUTMUL_BENCH_KEEP_BLAS") == nullptr) {
    const lutmul::CpuFeatures& cpu = lutmul::cpu_features();
    const char* core = cpu.avx512f ? "SkylakeX" : cpu.avx2 ? "Haswell" : nullptr;
    if (core != nullptr) {
      setenv("OPENBLAS_CORETYPE", core, 1);
      execv("/proc/self/exe", argv);  // returns only on failure: then carry on as we are
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("blas_core", openblas_get_corename());
  benchmark::AddCustomContext("blas_config", openblas_get_config());
  benchmark::AddCustomContext("lutmul_isa", lutmul::isa_name(lutmul::active_isa()));
  const lutmul::ProductBackend& exact = lutmul::exact_product_backend();
  benchmark::AddCustomContext("onednn", exact.version + " " + exact.isa);
  register_all();
  register_fma_peak();
  register_operator_benchmarks();
  register_lowrank_benchmarks();
  register_runtime_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
