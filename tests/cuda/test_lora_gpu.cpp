// Multi-adapter LoRA on the GPU against a plain per-row CPU reference (double sums): the
// grouped kernels, the GPU row-by-row reference and the one-adapter-at-a-time baseline, on
// mixed batches with rows that use no adapter (left bit for bit unchanged), mixed ranks,
// many adapters with few rows, one adapter with many rows, column-major X, bad ids.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <sstream>

#include "../cpp/test_util.h"
#include "gpu_test_util.h"
#include "lutmul/lutmul.h"

namespace lutmul {
namespace {

struct Adapters {
  int64_t k = 0, m = 0;
  std::vector<std::vector<float>> a, b;  // row-major K × r and r × M
  std::vector<float> alpha;
  std::vector<int> ranks;
  std::vector<cuda::LoraAdapterView> views() const {
    std::vector<cuda::LoraAdapterView> out;
    for (size_t j = 0; j < a.size(); ++j)
      out.push_back({MatrixView::row_major(a[j].data(), k, ranks[j]), MatrixView::row_major(b[j].data(), ranks[j], m),
                     alpha[j]});
    return out;
  }
};

Adapters make_adapters(int64_t k, int64_t m, const std::vector<int>& ranks, uint64_t seed) {
  Adapters s;
  s.k = k;
  s.m = m;
  s.ranks = ranks;
  for (size_t j = 0; j < ranks.size(); ++j) {
    const float spread = 1.f / std::sqrt(static_cast<float>(k));
    s.a.push_back(testing::uniform(k, ranks[j], -spread, spread, seed + 2 * j));
    s.b.push_back(testing::uniform(ranks[j], m, -1.f, 1.f, seed + 2 * j + 1));
    s.alpha.push_back(static_cast<float>(1 + j % 5) * (j % 2 ? -1.f : 1.f));
  }
  return s;
}

// Checks y (n × ldy) against base + the per-row LoRA update in double.
std::string check_against_reference(const Adapters& s, const std::vector<float>& x, const std::vector<int32_t>& ids,
                                    const std::vector<float>& base, const std::vector<float>& y, int64_t n, int64_t ldy) {
  for (int64_t i = 0; i < n; ++i) {
    const int a = ids[static_cast<size_t>(i)];
    if (a < 0 || a >= static_cast<int>(s.ranks.size())) {
      if (std::memcmp(&base[static_cast<size_t>(i * ldy)], &y[static_cast<size_t>(i * ldy)], static_cast<size_t>(ldy) * sizeof(float)) != 0)
        return "row " + std::to_string(i) + " has no adapter but changed";
      continue;
    }
    const int r = s.ranks[static_cast<size_t>(a)];
    const double scale = s.alpha[static_cast<size_t>(a)] / static_cast<float>(r);
    std::vector<double> t(static_cast<size_t>(r), 0.0), t_magnitude(static_cast<size_t>(r), 0.0);
    for (int j = 0; j < r; ++j)
      for (int64_t p = 0; p < s.k; ++p) {
        const double term = double{x[static_cast<size_t>(i * s.k + p)]} * s.a[static_cast<size_t>(a)][static_cast<size_t>(p * r + j)];
        t[static_cast<size_t>(j)] += term;
        t_magnitude[static_cast<size_t>(j)] += std::fabs(term);
      }
    for (int64_t col = 0; col < ldy; ++col) {
      const size_t at = static_cast<size_t>(i * ldy + col);
      if (col >= s.m) {
        if (std::memcmp(&base[at], &y[at], sizeof(float)) != 0) return "padding of row " + std::to_string(i) + " changed";
        continue;
      }
      double update = 0, magnitude = 0;
      for (int j = 0; j < r; ++j) {
        const double bj = s.b[static_cast<size_t>(a)][static_cast<size_t>(j * s.m + col)];
        update += t[static_cast<size_t>(j)] * bj;
        magnitude += t_magnitude[static_cast<size_t>(j)] * std::fabs(bj);
      }
      const double expected = base[at] + scale * update;
      const double allowed = 2e-5 * std::fabs(scale) * magnitude + 1e-6 * (1 + std::fabs(expected));
      if (!(std::fabs(expected - y[at]) <= allowed)) {
        std::ostringstream out;
        out << "(" << i << ", " << col << ") adapter " << a << ": expected " << expected << ", got " << y[at]
            << ", allowed " << allowed;
        return out.str();
      }
    }
  }
  return "";
}

// Runs the three GPU paths on one batch and checks each against the CPU reference.
void expect_all_paths_match(const Adapters& s, int64_t n, const std::vector<int32_t>& ids, Layout layout = Layout::row_major) {
  const cuda::LoraGpu gpu(s.k, s.m, s.views());
  const std::vector<float> x = testing::uniform(n, s.k, -1.f, 1.f, static_cast<uint64_t>(n + s.k));
  const int64_t ldy = s.m + 2;
  const std::vector<float> base = testing::uniform(n, ldy, -1.f, 1.f, static_cast<uint64_t>(n * 3));
  const testing::DeviceMatrix dx = testing::to_device(x, n, s.k, layout, 1, 1);
  const cuda::DeviceBuffer<int32_t> device_ids(ids.empty() ? std::vector<int32_t>{0} : ids);
  for (int path = 0; path < 3; ++path) {
    SCOPED_TRACE(path == 0 ? "grouped" : path == 1 ? "row-by-row reference" : "one adapter at a time");
    cuda::DeviceBuffer<float> y(base);
    if (path == 0) gpu.apply(dx.view, device_ids.data(), y.data(), ldy);
    if (path == 1) gpu.apply_reference(dx.view, device_ids.data(), y.data(), ldy);
    if (path == 2) gpu.apply_per_adapter(dx.view, ids.data(), y.data(), ldy);
    ASSERT_EQ("", check_against_reference(s, x, ids, base, y.download(), n, ldy));
  }
}

std::vector<int32_t> random_ids(int64_t n, int nadapters, double none_share, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick(0, nadapters - 1);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = u(rng) < none_share ? -1 : pick(rng);
  return ids;
}

TEST(LoraGpu, SingleRow) {
  LUTMUL_REQUIRE_GPU();
  expect_all_paths_match(make_adapters(64, 48, {8}, 1), 1, {0});
}

TEST(LoraGpu, MixedRanksUpToTheLimit) {
  LUTMUL_REQUIRE_GPU();
  const Adapters s = make_adapters(300, 33, {1, 4, 16, 64, 256, 7}, 2);
  expect_all_paths_match(s, 500, random_ids(500, 6, 0.2, 3));
}

TEST(LoraGpu, SixteenAdaptersOver256Rows) {
  LUTMUL_REQUIRE_GPU();
  const Adapters s = make_adapters(1000, 300, std::vector<int>(16, 16), 4);
  expect_all_paths_match(s, 256, random_ids(256, 16, 0.1, 5));
}

TEST(LoraGpu, ManyAdaptersFewRowsEach) {
  LUTMUL_REQUIRE_GPU();
  std::vector<int> ranks;
  for (int j = 0; j < 300; ++j) ranks.push_back(2 + j % 3);
  const Adapters s = make_adapters(33, 129, ranks, 6);
  expect_all_paths_match(s, 1000, random_ids(1000, 300, 0.05, 7));
}

TEST(LoraGpu, OneAdapterManyTiles) {
  LUTMUL_REQUIRE_GPU();
  const Adapters s = make_adapters(128, 64, {32}, 8);
  expect_all_paths_match(s, 5000, std::vector<int32_t>(5000, 0));
}

TEST(LoraGpu, ColumnMajorInput) {
  LUTMUL_REQUIRE_GPU();
  const Adapters s = make_adapters(70, 90, {4, 12, 20}, 9);
  expect_all_paths_match(s, 300, random_ids(300, 3, 0.3, 10), Layout::col_major);
}

TEST(LoraGpu, RowsWithoutAdaptersAreUnchanged) {
  LUTMUL_REQUIRE_GPU();
  const Adapters s = make_adapters(17, 5, {3, 3}, 11);
  expect_all_paths_match(s, 100, std::vector<int32_t>(100, -1));
}

TEST(LoraGpu, BadIdsAreErrorsOrLeftAlone) {
  LUTMUL_REQUIRE_GPU();
  const Adapters s = make_adapters(40, 20, {4, 8}, 12);
  const cuda::LoraGpu gpu(s.k, s.m, s.views());
  EXPECT_EQ(2, gpu.num_adapters());
  EXPECT_EQ(8, gpu.rank(1));
  EXPECT_THROW(gpu.rank(2), Error);
  EXPECT_GT(gpu.bytes(), 0);
  const int64_t n = 50;
  std::vector<int32_t> ids = random_ids(n, 2, 0.1, 13);
  ids[7] = 2;
  ids[20] = -5;
  const std::vector<float> x = testing::uniform(n, s.k, -1.f, 1.f, 14);
  const std::vector<float> base = testing::uniform(n, s.m, -1.f, 1.f, 15);
  const testing::DeviceMatrix dx = testing::to_device(x, n, s.k, Layout::row_major);
  const cuda::DeviceBuffer<int32_t> device_ids(ids);
  cuda::DeviceBuffer<float> y(base);
  EXPECT_THROW(gpu.apply(dx.view, device_ids.data(), y.data(), s.m), Error);
  EXPECT_THROW(gpu.apply_per_adapter(dx.view, ids.data(), y.data(), s.m), Error);
  cuda::DeviceBuffer<float> y2(base);
  gpu.apply(dx.view, device_ids.data(), y2.data(), s.m, {}, /*check_ids=*/false);
  EXPECT_EQ("", check_against_reference(s, x, ids, base, y2.download(), n, s.m));  // bad rows: unchanged
  EXPECT_THROW(gpu.apply(MatrixView::row_major(dx.view.data, n, s.k - 1), device_ids.data(), y.data(), s.m), Error);
  EXPECT_THROW(gpu.apply(dx.view, device_ids.data(), y.data(), s.m - 1), Error);
  EXPECT_THROW(gpu.apply(dx.view, nullptr, y.data(), s.m), Error);
}

TEST(LoraGpu, BadAdaptersAreErrors) {
  LUTMUL_REQUIRE_GPU();
  Adapters s = make_adapters(40, 20, {4}, 16);
  EXPECT_THROW(cuda::LoraGpu(s.k, s.m, {}), Error);
  EXPECT_THROW(cuda::LoraGpu(s.k + 1, s.m, s.views()), Error);
  EXPECT_THROW(cuda::LoraGpu(s.k, s.m + 1, s.views()), Error);
  Adapters too_wide = make_adapters(8, 8, {257}, 17);
  EXPECT_THROW(cuda::LoraGpu(8, 8, too_wide.views()), Error);
  s.a[0][5] = std::nanf("");
  EXPECT_THROW(cuda::LoraGpu(s.k, s.m, s.views()), Error);
}

}  // namespace
}  // namespace lutmul
