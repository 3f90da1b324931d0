// Benchmark families registered by main() in bench_maddness.cpp.
#pragma once
void register_operator_benchmarks();
