// Google Benchmark on the GPU (lutmul_bench_cuda): the lutmul_cuda operators against
// cuBLAS/cuBLASLt baselines of the same shapes, in the same run. Times are GPU time between
// two CUDA events around each call on one stream (manual time); data are already on the device.
//
//   scripts/gpu_check.sh bench      (or the binary with --benchmark_out=cuda.json
//                                    --benchmark_out_format=json), then
//   python3 bench/cuda_table.py build/gpu/results/bench_cuda.json
//
// Names (arguments after the slashes):
//   maddness_gpu_encode/N/D/C, maddness_gpu_encode_colmajor/N/D/C   counters touched_bytes/s
//     (32-byte sectors holding a split column: what the encoder must read) and hbm_fraction
//     (that rate over the device's peak memory bandwidth, computed from its clock and bus)
//   maddness_gpu_scan/N/M/C, maddness_gpu_scan_averaged/N/M/C       lookups/s
//   maddness_gpu_matmul/N/D/M/C, maddness_gpu_matmul_colmajor/...   encode + scan, no NaN check;
//   maddness_gpu_matmul_checked/...                                 with the NaN check (a sync)
//   dense_gpu_fp32/N/K/M (cuBLAS SGEMM, TF32 off), dense_gpu_tf32, dense_gpu_bf16 and
//   dense_gpu_fp16 (X converted from fp32 inside the call), dense_gpu_bf16_converted and
//   dense_gpu_fp16_converted (the tensor-core GEMM alone, X already 16-bit)    GFLOP/s
//   int8_gpu/N/K/M (quantise + cuBLASLt int8 + epilogue, no finite check)     GFLOP/s
//   lora_gpu_grouped/N/K/M/r/adapters, lora_gpu_per_adapter/..., lora_gpu_reference/...
//   device_copy/MiB (cudaMemcpy device to device: read + write bandwidth, the measured bound)
// Without a usable GPU the binary prints why and runs nothing.
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "bench_registry.h"
#include "lutmul/cuda/cuda.h"
#include "lutmul/lutmul.h"

namespace {

using lutmul::Maddness;
using lutmul::MatrixView;
namespace cuda = lutmul::cuda;

void check(cudaError_t status, const char* what) { cuda::check(status, what); }

// Times `call` (which queues work on `stream`) with CUDA events, one iteration at a time.
template <typename Call>
void time_on_gpu(benchmark::State& state, cudaStream_t stream, Call&& call) {
  cudaEvent_t start = nullptr, stop = nullptr;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  call();  // warm-up: first-call allocations, heuristics, lazy module loading
  check(cudaStreamSynchronize(stream), "warm-up");
  for (auto _ : state) {
    check(cudaEventRecord(start, stream), "cudaEventRecord");
    call();
    check(cudaEventRecord(stop, stream), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0.f;
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    state.SetIterationTime(static_cast<double>(ms) * 1e-3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

cuda::Stream& bench_stream() {
  static cuda::Stream stream;
  return stream;
}
cudaStream_t native_stream() { return static_cast<cudaStream_t>(bench_stream().handle()); }

double peak_bandwidth() {
  int device = 0, clock_khz = 0, bus_bits = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device), "memory clock");
  check(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device), "bus width");
  return 2.0 * clock_khz * 1e3 * bus_bits / 8.0;  // double data rate
}

std::vector<float> weights(int64_t d, int64_t m, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> b(static_cast<size_t>(d * m));
  for (auto& v : b) v = normal(rng);
  return b;
}

// Device copies of structured rows, row-major or column-major, cached by shape.
const cuda::DeviceBuffer<float>& device_rows(int64_t n, int64_t d, bool col_major) {
  static std::map<std::tuple<int64_t, int64_t, bool>, std::unique_ptr<cuda::DeviceBuffer<float>>> cache;
  auto& buffer = cache[{n, d, col_major}];
  if (!buffer) {
    std::vector<float> a = structured_rows(n, d, 1);
    if (col_major) {
      std::vector<float> t(a.size());
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < d; ++j) t[static_cast<size_t>(j * n + i)] = a[static_cast<size_t>(i * d + j)];
      a.swap(t);
    }
    buffer = std::make_unique<cuda::DeviceBuffer<float>>(a);
  }
  return *buffer;
}

MatrixView device_view(int64_t n, int64_t d, bool col_major) {
  const float* a = device_rows(n, d, col_major).data();
  return col_major ? MatrixView::col_major(a, n, d) : MatrixView::row_major(a, n, d);
}

// One model per (D, M, C, accumulation), trained on 4096 rows as in bench_maddness.cpp;
// the CPU model is kept for its split columns.
struct Models {
  Maddness cpu;
  std::unique_ptr<cuda::MaddnessGpu> gpu;
};
const Models& models(int64_t d, int64_t m, int c, lutmul::Accumulation accumulation) {
  static std::map<std::tuple<int64_t, int64_t, int, int>, std::unique_ptr<Models>> cache;
  auto& entry = cache[{d, m, c, static_cast<int>(accumulation)}];
  if (!entry) {
    lutmul::MaddnessConfig config;
    config.ncodebooks = c;
    config.accumulation = accumulation;
    entry = std::make_unique<Models>(Models{Maddness(config), nullptr});
    const std::vector<float> train = structured_rows(4096, d, 2);
    const std::vector<float> b = weights(d, m, 7);
    entry->cpu.fit(MatrixView::row_major(train.data(), 4096, d), MatrixView::row_major(b.data(), d, m));
    entry->gpu = std::make_unique<cuda::MaddnessGpu>(entry->cpu);
  }
  return *entry;
}
const cuda::MaddnessGpu& gpu_model(int64_t d, int64_t m, int c, lutmul::Accumulation accumulation) {
  return *models(d, m, c, accumulation).gpu;
}

// Distinct 32-byte sectors per row holding a split column (rows start sector-aligned when
// D is a multiple of 8), or 4 bytes per distinct split column for column-major A.
double touched_bytes(const Maddness& model, int64_t n, bool col_major) {
  std::set<int64_t> columns, sectors;
  for (int i = 0; i < model.ncodebooks(); ++i)
    for (int t = 0; t < 4; ++t) {
      columns.insert(model.split_dim(i, t));
      sectors.insert(model.split_dim(i, t) / 8);
    }
  return static_cast<double>(n) *
         (col_major ? 4.0 * static_cast<double>(columns.size()) : 32.0 * static_cast<double>(sectors.size()));
}

void encode(benchmark::State& state, bool col_major) {
  const int64_t n = state.range(0), d = state.range(1);
  const int c = static_cast<int>(state.range(2));
  const Models& both = models(d, 10, c, lutmul::Accumulation::exact);
  const cuda::MaddnessGpu& model = *both.gpu;
  const MatrixView a = device_view(n, d, col_major);
  cuda::DeviceBuffer<uint8_t> codes(model.code_bytes(n));
  time_on_gpu(state, native_stream(), [&] { model.encode(a, codes.data(), bench_stream(), false); });
  const double bytes = touched_bytes(both.cpu, n, col_major);
  state.counters["touched_bytes/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["hbm_fraction"] =
      benchmark::Counter(bytes / peak_bandwidth(), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["rows/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

void scan(benchmark::State& state, lutmul::Accumulation accumulation) {
  const int64_t n = state.range(0), m = state.range(1), d = 512;
  const int c = static_cast<int>(state.range(2));
  const cuda::MaddnessGpu& model = gpu_model(d, m, c, accumulation);
  cuda::DeviceBuffer<uint8_t> codes(model.code_bytes(n));
  model.encode(device_view(n, d, true), codes.data(), bench_stream());
  cuda::DeviceBuffer<float> y(static_cast<size_t>(n * m));
  time_on_gpu(state, native_stream(), [&] { model.scan(codes.data(), n, y.data(), m, bench_stream()); });
  state.counters["lookups/s"] =
      benchmark::Counter(static_cast<double>(n * m * c), benchmark::Counter::kIsIterationInvariantRate);
}

void matmul(benchmark::State& state, bool col_major, bool checked) {
  const int64_t n = state.range(0), d = state.range(1), m = state.range(2);
  const int c = static_cast<int>(state.range(3));
  const cuda::MaddnessGpu& model = gpu_model(d, m, c, lutmul::Accumulation::exact);
  const MatrixView a = device_view(n, d, col_major);
  cuda::DeviceBuffer<float> y(static_cast<size_t>(n * m));
  time_on_gpu(state, native_stream(), [&] { model.matmul(a, y.data(), m, bench_stream(), checked); });
  state.counters["rows/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

void gflops(benchmark::State& state, int64_t n, int64_t k, int64_t m) {
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(m),
                                                 benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void dense(benchmark::State& state, cuda::GpuPrecision precision, bool converted) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  const std::vector<float> w = weights(k, m, 3);
  const cuda::DenseGpu op(MatrixView::row_major(w.data(), k, m), nullptr, precision);
  const MatrixView x = device_view(n, k, false);
  cuda::DeviceBuffer<float> y(static_cast<size_t>(n * m));
  if (converted) {
    cuda::DeviceBuffer<uint16_t> x16(static_cast<size_t>(n * k));
    op.convert_input(x, x16.data(), bench_stream());
    time_on_gpu(state, native_stream(), [&] { op.forward_converted(x16.data(), n, y.data(), m, bench_stream()); });
  } else {
    time_on_gpu(state, native_stream(), [&] { op.forward_device(x, y.data(), m, bench_stream()); });
  }
  gflops(state, n, k, m);
}

void int8(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  const std::vector<float> w = weights(k, m, 3);
  const cuda::Int8Gpu op(MatrixView::row_major(w.data(), k, m));
  const MatrixView x = device_view(n, k, false);
  cuda::DeviceBuffer<float> y(static_cast<size_t>(n * m));
  time_on_gpu(state, native_stream(), [&] { op.forward_device(x, y.data(), m, bench_stream(), false); });
  gflops(state, n, k, m);
}

enum class LoraPath { grouped, per_adapter, reference };

void lora(benchmark::State& state, LoraPath path) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  const int r = static_cast<int>(state.range(3)), count = static_cast<int>(state.range(4));
  std::vector<std::vector<float>> a, b;
  std::vector<cuda::LoraAdapterView> views;
  for (int j = 0; j < count; ++j) {
    a.push_back(weights(k, r, static_cast<uint64_t>(2 * j)));
    b.push_back(weights(r, m, static_cast<uint64_t>(2 * j + 1)));
  }
  for (int j = 0; j < count; ++j)
    views.push_back({MatrixView::row_major(a[static_cast<size_t>(j)].data(), k, r),
                     MatrixView::row_major(b[static_cast<size_t>(j)].data(), r, m), 16.f});
  const cuda::LoraGpu op(k, m, views);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  std::mt19937_64 rng(5);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % static_cast<uint64_t>(count));  // a mixed batch
  const cuda::DeviceBuffer<int32_t> device_ids(ids);
  const MatrixView x = device_view(n, k, false);
  cuda::DeviceBuffer<float> y(static_cast<size_t>(n * m));
  y.zero(bench_stream());
  time_on_gpu(state, native_stream(), [&] {
    if (path == LoraPath::grouped) op.apply(x, device_ids.data(), y.data(), m, bench_stream(), false);
    if (path == LoraPath::per_adapter) op.apply_per_adapter(x, ids.data(), y.data(), m, bench_stream());
    if (path == LoraPath::reference) op.apply_reference(x, device_ids.data(), y.data(), m, bench_stream());
  });
  state.counters["rows/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

void device_copy(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  cuda::DeviceBuffer<char> from(bytes), to(bytes);
  from.zero(bench_stream());
  time_on_gpu(state, native_stream(), [&] {
    check(cudaMemcpyAsync(to.data(), from.data(), bytes, cudaMemcpyDeviceToDevice, native_stream()), "copy");
  });
  state.counters["bytes/s"] = benchmark::Counter(2.0 * static_cast<double>(bytes), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["hbm_fraction"] =
      benchmark::Counter(2.0 * static_cast<double>(bytes) / peak_bandwidth(), benchmark::Counter::kIsIterationInvariantRate);
}

template <typename F>
void add(const char* name, F fn, const std::vector<int64_t>& args) {
  benchmark::RegisterBenchmark(name, fn)->Args(args)->UseManualTime()->Unit(benchmark::kMicrosecond);
}

void register_all() {
  using lutmul::Accumulation;
  using P = cuda::GpuPrecision;
  const int64_t n = 65536, d = 512;
  add("device_copy", device_copy, {1024});
  for (int64_t c : {8, 16, 32}) {
    add("maddness_gpu_encode", [](benchmark::State& s) { encode(s, false); }, {n, d, c});
    add("maddness_gpu_encode_colmajor", [](benchmark::State& s) { encode(s, true); }, {n, d, c});
    for (int64_t m : {10, 100}) add("maddness_gpu_scan", [](benchmark::State& s) { scan(s, Accumulation::exact); }, {n, m, c});
    add("maddness_gpu_matmul", [](benchmark::State& s) { matmul(s, false, false); }, {n, d, 100, c});
    add("maddness_gpu_matmul_colmajor", [](benchmark::State& s) { matmul(s, true, false); }, {n, d, 100, c});
  }
  add("maddness_gpu_scan_averaged", [](benchmark::State& s) { scan(s, Accumulation::averaged); }, {n, 100, 16});
  add("maddness_gpu_matmul_checked", [](benchmark::State& s) { matmul(s, false, true); }, {n, d, 100, 16});
  // The exact products of the MADDNESS shape, and of the int8 shape.
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{n, d, 100}, std::vector<int64_t>{4096, 4096, 4096}}) {
    add("dense_gpu_fp32", [](benchmark::State& s) { dense(s, P::fp32, false); }, shape);
    add("dense_gpu_tf32", [](benchmark::State& s) { dense(s, P::tf32, false); }, shape);
    add("dense_gpu_bf16", [](benchmark::State& s) { dense(s, P::bf16, false); }, shape);
    add("dense_gpu_bf16_converted", [](benchmark::State& s) { dense(s, P::bf16, true); }, shape);
    add("dense_gpu_fp16", [](benchmark::State& s) { dense(s, P::fp16, false); }, shape);
    add("dense_gpu_fp16_converted", [](benchmark::State& s) { dense(s, P::fp16, true); }, shape);
  }
  add("int8_gpu", int8, {4096, 4096, 4096});
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{256, 4096, 4096, 16, 16}, std::vector<int64_t>{4096, 4096, 4096, 16, 64}}) {
    add("lora_gpu_grouped", [](benchmark::State& s) { lora(s, LoraPath::grouped); }, shape);
    add("lora_gpu_per_adapter", [](benchmark::State& s) { lora(s, LoraPath::per_adapter); }, shape);
  }
  add("lora_gpu_reference", [](benchmark::State& s) { lora(s, LoraPath::reference); }, {256, 4096, 4096, 16, 16});
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (!cuda::available()) {
    std::printf("lutmul_bench_cuda: no benchmarks run: %s\n", cuda::unavailable_reason().c_str());
    return 0;
  }
  int device = 0, multiprocessors = 0, runtime = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device);
  cudaRuntimeGetVersion(&runtime);
  benchmark::AddCustomContext("gpu", cuda::device_name());
  benchmark::AddCustomContext("gpu_multiprocessors", std::to_string(multiprocessors));
  benchmark::AddCustomContext("gpu_peak_bandwidth_GBps", std::to_string(peak_bandwidth() / 1e9));
  benchmark::AddCustomContext("cuda_runtime", std::to_string(runtime));
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
