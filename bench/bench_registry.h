// Shared by the benchmark files: the operator family registered by main() in
// bench_maddness.cpp, and the structured test data every benchmark uses.
#pragma once

#include <cstdint>
#include <vector>

void register_operator_benchmarks();
void register_lowrank_benchmarks();  // bench_lowrank.cpp
void register_runtime_benchmarks();  // bench_runtime.cpp
// n × d row-major: a decaying rank-16 signal plus 10 % noise.
std::vector<float> structured_rows(int64_t n, int64_t d, uint64_t seed);
