// Shared by the benchmark files: the operator family registered by main() in
// bench_maddness.cpp, and the structured test data every benchmark uses.
#pragma once

#include <cstdint>
#include <vector>

void register_operator_benchmarks();
void register_lowrank_benchmarks();  // bench_lowrank.cpp
void register_runtime_benchmarks();  // bench_runtime.cpp
// exact_sgemm, exact_eigen and exact_onednn for one shape (bench_exact.cpp).
void register_exact_products(int64_t n, int64_t k, int64_t m, int64_t threads);
// fma_peak: one core's f32 fused multiply-add rate, the exact products' ceiling (bench_exact.cpp).
void register_fma_peak();
// n × d row-major: a decaying rank-16 signal plus 10 % noise.
std::vector<float> structured_rows(int64_t n, int64_t d, uint64_t seed);
