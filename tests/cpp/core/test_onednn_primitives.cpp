// What lutmul's oneDNN products share (src/core/onednn_primitives.h): primitives are made
// per thread count with OpenMP set to that count while they are made (a oneDNN primitive keeps
// the thread count it was made with), and weights are reordered once per layout.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/onednn_engine.h"
#include "core/onednn_primitives.h"

namespace lutmul::detail {
namespace {

struct Made {
  int threads_asked;
  int threads_current;  // omp_get_max_threads() while made
};

TEST(PerThreadCount, MakesOncePerThreadCountWithOpenMpSetToIt) {
  const PerThreadCount<Made> cache;
  const int outside = omp_get_max_threads();
  int calls = 0;
  const auto make = [&](int threads) {
    ++calls;
    return Made{threads, omp_get_max_threads()};
  };
  for (const int threads : {1, 2, 3, 1, 2, 3}) {
    const Made& made = cache.get(threads, make);
    EXPECT_EQ(made.threads_asked, threads);
    EXPECT_EQ(made.threads_current, threads) << "a primitive made here would keep the wrong thread count";
    EXPECT_EQ(omp_get_max_threads(), outside) << "the caller's OpenMP setting is restored";
  }
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(&cache.get(2, make), &cache.get(2, make));
  EXPECT_EQ(calls, 3);
}

TEST(PackedWeights, ReordersOncePerLayoutAndKeepsTheValues) {
  using dnnl::memory;
  const int64_t k = 64, m = 48;
  std::vector<float> plain(static_cast<size_t>(k * m));
  for (size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<float>(i) * 0.25f - 100.f;
  const memory::desc transposed({k, m}, memory::data_type::f32, memory::format_tag::ba);
  std::vector<float> caller = plain;  // the caller's weights, needed only while constructing
  PackedWeights packed(memory({{k, m}, memory::data_type::f32, memory::format_tag::ab}, onednn_cpu_engine(), caller.data()),
                       transposed);
  std::fill(caller.begin(), caller.end(), -1.f);
  const memory blocked = packed.in(transposed);
  EXPECT_NE(blocked.get_data_handle(), caller.data()) << "a copy, not the caller's weights";
  EXPECT_EQ(packed.in(transposed).get_data_handle(), blocked.get_data_handle()) << "reordered once";
  const memory::desc row_major({k, m}, memory::data_type::f32, memory::format_tag::ab);
  const memory again = packed.in(row_major);
  EXPECT_EQ(packed.in(row_major).get_data_handle(), again.get_data_handle());
  EXPECT_EQ(0, std::memcmp(again.get_data_handle(), plain.data(), plain.size() * sizeof(float)))
      << "the second layout is made from the first copy";
  // Back to the plain layout: the same values.
  std::vector<float> back(plain.size(), 0.f);
  memory out(row_major, onednn_cpu_engine(), back.data());
  dnnl::stream stream(onednn_cpu_engine());
  dnnl::reorder(blocked, out).execute(stream, const_cast<memory&>(blocked), out);
  stream.wait();
  EXPECT_EQ(0, std::memcmp(back.data(), plain.data(), plain.size() * sizeof(float)));
}

}  // namespace
}  // namespace lutmul::detail
