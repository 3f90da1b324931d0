// Run by ctest with LUTMUL_ISA set to a level this machine cannot run: every call that
// needs kernels must fail with lutmul::Error, never fall back silently.
#include <gtest/gtest.h>

#include <cstdlib>

#include "lutmul/lutmul.h"
#include "lutmul/runtime.h"
#include "runtime/tiny_bert.h"
#include "test_util.h"

namespace lutmul {
namespace {

TEST(Environment, UnsupportedIsaIsAnError) {
  ASSERT_NE(nullptr, std::getenv("LUTMUL_ISA")) << "run through ctest, which sets LUTMUL_ISA";
  EXPECT_THROW(active_isa(), Error);
  std::vector<float> a = testing::low_rank_rows(100, 8, 2, 0.1f, 1), b = testing::uniform(8, 2, -1.f, 1.f, 1);
  MaddnessConfig config;
  config.ncodebooks = 2;
  Maddness m(config);
  m.fit(MatrixView::row_major(a.data(), 100, 8), MatrixView::row_major(b.data(), 8, 2));
  EXPECT_THROW(m.matmul(MatrixView::row_major(a.data(), 100, 8)), Error);
  // The producer interface too, on the caller's thread (an error on the library's threads would end the process).
  std::vector<float> y(200);
  EXPECT_THROW(m.matmul_produced(MatrixView::row_major(a.data(), 100, 8), [](int64_t, int64_t) {}, y.data(), 2), Error);
  EncodedRows codes(100, 2);
  EXPECT_THROW(m.encode_rows(MatrixView::row_major(a.data(), 64, 8), 0, codes), Error);
  // Also the kinds whose product is oneDNN's, not lutmul's kernels: the setting is refused
  // everywhere, never ignored.
  const MatrixView X = MatrixView::row_major(a.data(), 100, 8), W = MatrixView::row_major(b.data(), 8, 2);
  EXPECT_THROW(DenseLinear(W).forward(X), Error);
  EXPECT_THROW(Bf16Linear(W).forward(X), Error);
}

// The runtime refuses the setting when it loads a model, before any embedding.
TEST(Environment, EncoderLoadRefusesAnUnsupportedIsa) {
  const testing::TinyBert bert = testing::write_tiny_bert(testing::TinyBertSpec{}, "environment");
  EXPECT_THROW(runtime::Encoder::load(bert.folder), Error);
}

}  // namespace
}  // namespace lutmul
