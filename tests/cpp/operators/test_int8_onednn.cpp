// Int8Linear's oneDNN backend (u8·s8 matmul for blocks of 64 and 32 rows, the own kernels for
// the rest) against the scalar reference, bit for bit; which backend runs and why.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

#include "expect_error.h"
#include "core/kernel_registry.h"
#include "lutmul/lutmul.h"
#include "test_util.h"

namespace lutmul::testing {
namespace {

// True where the backend must run: the CPU has AVX-512 VNNI, lutmul's int8 kernels use it, and
// oneDNN's own level has VNNI too (its exact product then exists for every shape tested).
bool onednn_int8_expected() {
  const std::string onednn = exact_product_backend().isa;
  const bool onednn_vnni = onednn == "avx512_core_vnni" || onednn == "avx512_core_bf16" || onednn == "avx512_core_amx";
  return cpu_features().avx512vnni && onednn_vnni &&
         std::string(detail::active_kernels().int8_variant).find("vnni") != std::string::npos;
}

// The forced oneDNN backend; a skip saying why where this CPU cannot run it, a failure where it
// should (a backend that silently never builds must not pass as skipped).
#define MAKE_ONEDNN_OR_SKIP(op, ...)                                                              \
  std::unique_ptr<Int8Linear> op;                                                                 \
  try {                                                                                           \
    op = std::make_unique<Int8Linear>(__VA_ARGS__);                                               \
  } catch (const Error& e) {                                                                      \
    if (onednn_int8_expected()) FAIL() << "this CPU and oneDNN have VNNI, yet: " << e.what();     \
    GTEST_SKIP() << "oneDNN's int8 product cannot run on this CPU: " << e.what();                 \
  }

Int8Config config_of(Int8Backend backend, bool dynamic) {
  Int8Config config;
  config.backend = backend;
  config.activations = dynamic ? ActivationScaling::dynamic_per_row : ActivationScaling::static_per_tensor;
  config.calibration_percentile = 99.0;
  return config;
}

// Row counts around both block sizes: below the smallest, exact blocks, blocks plus a rest.
class Int8Onednn : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};

TEST_P(Int8Onednn, EqualsTheScalarReferenceBitForBit) {
  const auto [n, k, m] = GetParam();
  const std::vector<float> w = uniform(k, m, -1.f, 1.f, static_cast<uint64_t>(k * 13 + m));
  std::vector<float> x = low_rank_rows(n, k, 4, 0.2f, static_cast<uint64_t>(n + 3 * k));
  if (n > 2) x[static_cast<size_t>(k) + 1] = 1e4f;  // an outlier, clamped under static scaling
  const std::vector<float> bias = uniform(1, m, -1.f, 1.f, 9);
  const std::vector<float> x_col = to_col_major(x, n, k);
  const MatrixView calibration = MatrixView::row_major(x.data(), n, k);
  for (bool dynamic : {true, false}) {
    MAKE_ONEDNN_OR_SKIP(op, MatrixView::row_major(w.data(), k, m), bias.data(), config_of(Int8Backend::onednn, dynamic),
                        &calibration);
    EXPECT_NE(op->path().find("oneDNN"), std::string::npos) << op->path();
    const int64_t ldy = m + 5;
    std::vector<float> expected(static_cast<size_t>(n * ldy), -1.f), got(expected), got_col(expected);
    op->forward_reference(MatrixView::row_major(x.data(), n, k), expected.data(), ldy);
    const int saved_threads = num_threads();
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      op->forward(MatrixView::row_major(x.data(), n, k), got.data(), ldy);
      op->forward(MatrixView::col_major(x_col.data(), n, k), got_col.data(), ldy);
      ASSERT_EQ(0, std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float)))
          << (dynamic ? "dynamic" : "static") << ", " << threads << " threads, " << op->path();
      ASSERT_EQ(0, std::memcmp(expected.data(), got_col.data(), expected.size() * sizeof(float)));
    }
    set_num_threads(saved_threads);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Int8Onednn,
                         ::testing::Combine(::testing::Values<int64_t>(1, 31, 32, 33, 64, 100, 129, 256, 300),
                                            ::testing::Values<int64_t>(1, 3, 63, 384),
                                            ::testing::Values<int64_t>(1, 17, 100)),
                         [](const auto& param_info) {
                           return "N" + std::to_string(std::get<0>(param_info.param)) + "_K" +
                                  std::to_string(std::get<1>(param_info.param)) + "_M" + std::to_string(std::get<2>(param_info.param));
                         });

TEST(Int8OnednnBackend, SharedFromThreadsGivesTheSingleThreadedResult) {
  const int64_t n = 300, k = 96, m = 40;
  const std::vector<float> w = uniform(k, m, -1.f, 1.f, 1), x = uniform(n, k, -2.f, 2.f, 2);
  MAKE_ONEDNN_OR_SKIP(op, MatrixView::row_major(w.data(), k, m), nullptr, config_of(Int8Backend::onednn, true));
  std::vector<float> expected(static_cast<size_t>(n * m));
  op->forward(MatrixView::row_major(x.data(), n, k), expected.data(), m);
  std::vector<std::thread> threads;
  std::vector<int> same(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::vector<float> y(expected.size());
      for (int i = 0; i < 20; ++i) {
        op->forward(MatrixView::row_major(x.data(), n, k), y.data(), m);
        same[static_cast<size_t>(t)] += y == expected;
      }
    });
  for (std::thread& t : threads) t.join();
  for (int count : same) EXPECT_EQ(count, 20);
}

TEST(Int8OnednnBackend, NonFiniteRowsInABlockAreAnError) {
  const int64_t n = 260, k = 20, m = 8;
  const std::vector<float> w = uniform(k, m, -1.f, 1.f, 3);
  std::vector<float> x = uniform(n, k, -1.f, 1.f, 4);
  MAKE_ONEDNN_OR_SKIP(op, MatrixView::row_major(w.data(), k, m), nullptr, config_of(Int8Backend::onednn, true));
  std::vector<float> y(static_cast<size_t>(n * m));
  x[static_cast<size_t>(100 * k + 3)] = std::numeric_limits<float>::quiet_NaN();  // inside the first block
  expect_error([&] { op->forward(MatrixView::row_major(x.data(), n, k), y.data(), m); }, {"non-finite"});
  x[static_cast<size_t>(100 * k + 3)] = 0.f;
  x[static_cast<size_t>(258 * k)] = std::numeric_limits<float>::infinity();  // in the rest
  expect_error([&] { op->forward(MatrixView::row_major(x.data(), n, k), y.data(), m); }, {"non-finite"});
}

TEST(Int8OnednnBackend, PathNamesWhatRunsAndFilesLoadWithTheAutomaticChoice) {
  const int64_t k = 64, m = 32, n = 40;
  const std::vector<float> w = uniform(k, m, -1.f, 1.f, 5), x = uniform(n, k, -1.f, 1.f, 6);
  const Int8Linear own(MatrixView::row_major(w.data(), k, m), nullptr, config_of(Int8Backend::own_kernels, true));
  EXPECT_NE(own.path().find("Int8Backend::own_kernels was asked for"), std::string::npos) << own.path();
  const Int8Linear automatic(MatrixView::row_major(w.data(), k, m));
  // Automatic: oneDNN exactly where it runs AMX tiles (docs/design.md, int8).
  const bool amx = cpu_features().amx_int8 && active_isa() != Isa::avx2;
  EXPECT_EQ(automatic.path().find("oneDNN brg:avx512_core_amx") == 0, amx) << automatic.path();
  std::cout << "[ path     ] automatic on this CPU: " << automatic.path() << "\n";

  // Files keep the weights, not the backend: a loaded forced-oneDNN operator picks again, and
  // gives the same bits.
  MAKE_ONEDNN_OR_SKIP(forced, MatrixView::row_major(w.data(), k, m), nullptr, config_of(Int8Backend::onednn, true));
  const std::vector<uint8_t> bytes = forced->serialize();
  const auto loaded = LinearOperator::deserialize(bytes.data(), bytes.size());
  const auto* as_int8 = dynamic_cast<const Int8Linear*>(loaded.get());
  ASSERT_NE(as_int8, nullptr);
  EXPECT_EQ(as_int8->config().backend, Int8Backend::automatic);
  EXPECT_EQ(as_int8->path(), automatic.path());
  std::vector<float> a(static_cast<size_t>(n * m)), b(a.size());
  forced->forward(MatrixView::row_major(x.data(), n, k), a.data(), m);
  loaded->forward(MatrixView::row_major(x.data(), n, k), b.data(), m);
  EXPECT_EQ(a, b);
  EXPECT_EQ(forced->bytes(), own.bytes());  // the parameters; oneDNN's copy is not counted
}

TEST(Int8OnednnBackend, AnIsaLevelWithoutVnniRunsTheOwnKernelsAndRefusesOnednn) {
  // The scalar level: AVX2 is no such level on a CPU with AVX-VNNI (Intel since Alder Lake
  // and Sapphire Rapids), where it runs the avx-vnni kernels.
  const int64_t k = 64, m = 32;
  const std::vector<float> w = uniform(k, m, -1.f, 1.f, 7);
  const Isa saved = active_isa();
  set_isa(Isa::scalar);
  const Int8Linear automatic(MatrixView::row_major(w.data(), k, m));
  const std::string path = automatic.path();
  std::string refused;
  try {
    Int8Linear forced(MatrixView::row_major(w.data(), k, m), nullptr, config_of(Int8Backend::onednn, true));
  } catch (const Error& e) {
    refused = e.what();
  }
  set_isa(saved);
  EXPECT_NE(path.find("without VNNI"), std::string::npos) << path;
  EXPECT_NE(refused.find("Int8Backend::onednn cannot run here"), std::string::npos) << refused;
}

}  // namespace
}  // namespace lutmul::testing
