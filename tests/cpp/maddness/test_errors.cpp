// Bad input of every kind gives lutmul::Error with a message naming what was wrong.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "lutmul/lutmul.h"
#include "test_util.h"

namespace lutmul {
namespace {

// Runs `f`, expects lutmul::Error whose message contains `needle`.
template <typename F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

class Errors : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = testing::low_rank_rows(200, 12, 3, 0.1f, 4);
    b_ = testing::uniform(12, 3, -1.f, 1.f, 5);
  }
  MatrixView a(int64_t rows = 200) const { return MatrixView::row_major(a_.data(), rows, 12); }
  MatrixView b() const { return MatrixView::row_major(b_.data(), 12, 3); }
  Maddness fitted() const {
    MaddnessConfig config;
    config.ncodebooks = 3;
    Maddness m(config);
    m.fit(a(), b());
    return m;
  }
  std::vector<float> a_, b_;
};

TEST_F(Errors, BadConfigurations) {
  MaddnessConfig config;
  config.ncodebooks = 0;
  expect_error([&] { Maddness m(config); }, "ncodebooks");
  config.ncodebooks = 13;
  expect_error([&] { Maddness(config).fit(a(), b()); }, "larger than the number of columns D (12)");
  config.ncodebooks = 2;
  config.heldout_fraction = 1.5;
  expect_error([&] { Maddness m(config); }, "heldout_fraction");
  config.heldout_fraction = 0.2;
  config.ridge_lambdas = {-1.0};
  expect_error([&] { Maddness(config).fit(a(), b()); }, "ridge_lambdas");
  config.ridge_lambdas = {};
  config.leaves = 32;
  expect_error([&] { Maddness m(config); }, "leaves must be 16 or 64, got 32");
  config.leaves = 64;
  config.accumulation = Accumulation::averaged;
  expect_error([&] { Maddness m(config); }, "averaged accumulation needs 16-leaf trees");
  config.accumulation = Accumulation::exact;
  Maddness wide(config);
  expect_error([&] { wide.set_accumulation(Accumulation::averaged); }, "this model has 64 leaves");
  expect_error([&] { EncodedRows codes(10, 3, 8); }, "leaves must be 16 or 64, got 8");
}

TEST_F(Errors, BadTrainingData) {
  MaddnessConfig config;
  config.ncodebooks = 2;
  expect_error([&] { Maddness(config).fit(a(15), b()); }, "at least 16 rows");
  expect_error([&] { Maddness(config).fit(a(0), b()); }, "at least 16 rows");
  MaddnessConfig wide = config;
  wide.leaves = 64;
  expect_error([&] { Maddness(wide).fit(a(63), b()); }, "at least 64 rows for 64-leaf trees, got 63");
  std::vector<float> wrong_b = testing::uniform(11, 3, -1.f, 1.f, 1);
  expect_error([&] { Maddness(config).fit(a(), MatrixView::row_major(wrong_b.data(), 11, 3)); }, "200 x 12, B is 11 x 3");
  a_[17 * 12 + 5] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { Maddness(config).fit(a(), b()); }, "row 17, column 5");
  a_[17 * 12 + 5] = std::numeric_limits<float>::infinity();
  expect_error([&] { Maddness(config).fit(a(), b()); }, "non-finite");
  a_[17 * 12 + 5] = 0.f;
  b_[4] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { Maddness(config).fit(a(), b()); }, "B has a non-finite value");
  expect_error([&] { Maddness(config).fit(MatrixView::row_major(nullptr, 20, 12), b()); }, "null data");
  expect_error([&] { Maddness(config).fit(MatrixView::row_major(a_.data(), 20, 12, 5), b()); }, "leading dimension");
}

TEST_F(Errors, BadInferenceInput) {
  const Maddness m = fitted();
  std::vector<float> wide = testing::uniform(10, 13, -1.f, 1.f, 2);
  expect_error([&] { m.matmul(MatrixView::row_major(wide.data(), 10, 13)); }, "D = 12 columns, got 10 x 13");
  std::vector<float> y(200 * 3);
  expect_error([&] { m.matmul(a(), y.data(), 2); }, "ldy (2) is smaller than M (3)");
  expect_error([&] { Maddness().matmul(a()); }, "not fitted");
  MaddnessConfig config;
  config.ncodebooks = 3;
  Maddness encoder_only(config);
  encoder_only.fit_encoder(a());
  expect_error([&] { encoder_only.matmul(a()); }, "no weights");
  expect_error([&] { encoder_only.set_weights(MatrixView::row_major(b_.data(), 11, 3)); }, "D = 12 rows");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> bias = {0.f, nan, 0.f};
  expect_error([&] { encoder_only.set_weights(b(), bias.data()); }, "bias has a non-finite value");
  // NaN in a column the encoder reads.
  std::vector<float> rows = a_;
  rows[static_cast<size_t>(150 * 12 + m.split_dim(1, 2))] = nan;
  expect_error([&] { m.matmul(MatrixView::row_major(rows.data(), 200, 12)); }, "NaN");
  const EncodedRows other(10, 4);
  expect_error([&] { m.scan(other, y.data(), 3); }, "codes have 4 codebooks of 16 leaves, the model has 3 of 16");
  expect_error([&] { m.scan(EncodedRows(10, 3, 64), y.data(), 3); }, "codes have 3 codebooks of 64 leaves, the model has 3 of 16");
  expect_error([&] { other.code(10, 0); }, "outside 10 rows");
  EncodedRows wide_codes(10, 3, 64);
  expect_error([&] { wide_codes.set_code(0, 0, 64); }, "x 64 codes");
  wide_codes.set_code(9, 2, 63);
  EXPECT_EQ(63, wide_codes.code(9, 2));
  EXPECT_EQ(static_cast<size_t>(3 * 64), wide_codes.packed_bytes());
}

TEST_F(Errors, BadProducedRows) {
  const Maddness m = fitted();
  EncodedRows codes(200, 3);
  expect_error([&] { m.encode_rows(a(64), 32, codes); }, "first_row (32) must be a multiple of 64");
  expect_error([&] { m.encode_rows(a(64), -64, codes); }, "not negative");
  expect_error([&] { m.encode_rows(a(100), 128, codes); }, "rows 128..228 do not fit codes of 200 rows");
  expect_error([&] { m.encode_rows(a(50), 64, codes); }, "must end on a multiple of 64 or at the codes' last row (200)");
  EncodedRows other(200, 4);
  expect_error([&] { m.encode_rows(a(64), 0, other); }, "codes have 4 codebooks of 16 leaves, the model has 3 of 16");
  std::vector<float> wide = testing::uniform(64, 13, -1.f, 1.f, 2);
  expect_error([&] { m.encode_rows(MatrixView::row_major(wide.data(), 64, 13), 0, codes); }, "D = 12 columns, got 64 x 13");
  m.encode_rows(a(8), 192, codes);  // the last rows: ends at codes.rows()
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> rows = a_;
  rows[static_cast<size_t>(70 * 12 + m.split_dim(0, 0))] = nan;
  expect_error([&] { m.encode_rows(MatrixView::row_major(rows.data(), 200, 12).row_range(64, 64), 64, codes); }, "NaN");

  std::vector<float> y(200 * 3);
  const auto copy_rows = [&](int64_t begin, int64_t end) {
    std::copy(rows.begin() + begin * 12, rows.begin() + end * 12, a_.begin() + begin * 12);
  };
  expect_error([&] { m.matmul_produced(a(), copy_rows, y.data(), 3); }, "matmul_produced: A contains NaN");
  expect_error([&] { m.matmul_produced(a(), {}, y.data(), 3); }, "the producer is empty");
  expect_error([&] { m.matmul_produced(a(), copy_rows, y.data(), 2); }, "ldy (2) is smaller than M (3)");
}

TEST_F(Errors, BadNarrowOutputs) {
  const Maddness m = fitted();
  const EncodedRows codes = m.encode(a());
  std::vector<uint16_t> y(200 * 3);
  expect_error([&] { m.matmul_bf16(a(), y.data(), 2); }, "matmul_bf16: ldy (2) is smaller than M (3)");
  expect_error([&] { m.matmul_bf16(a(), nullptr, 3); }, "matmul_bf16: Y is null");
  expect_error([&] { m.scan_bf16(EncodedRows(10, 4), y.data(), 3); }, "scan_bf16: codes have 4 codebooks");
  expect_error([&] { m.scan_sums(codes, y.data(), 2); }, "scan_sums: ldy (2) is smaller than M (3)");
  expect_error([&] { m.scan_sums(codes, nullptr, 3); }, "scan_sums: Y is null");
  expect_error([&] { m.sum_scale(3); }, "sum_scale: output 3 is out of range (M = 3)");
  expect_error([&] { m.sum_offset(-1); }, "sum_offset: output -1 is out of range");
  expect_error([&] { Maddness().matmul_bf16(a(), y.data(), 3); }, "not fitted");
  Maddness float_tables = m;
  float_tables.set_table_mode(TableMode::float32);
  expect_error([&] { float_tables.scan_sums(codes, y.data(), 3); }, "float tables (TableMode::float32)");

  // 257 codebooks: exact sums could pass 2^16; averaged ones (at most 512 codebooks) cannot.
  const std::vector<float> rows = testing::low_rank_rows(64, 260, 4, 0.1f, 8);
  const std::vector<float> weights = testing::uniform(260, 2, -1.f, 1.f, 9);
  MaddnessConfig config;
  config.ncodebooks = 257;
  config.prototypes = PrototypeMethod::bucket_means;
  Maddness many(config);
  many.fit(MatrixView::row_major(rows.data(), 64, 260), MatrixView::row_major(weights.data(), 260, 2));
  const EncodedRows many_codes = many.encode(MatrixView::row_major(rows.data(), 64, 260));
  std::vector<uint16_t> sums(64 * 2);
  expect_error([&] { many.scan_sums(many_codes, sums.data(), 2); }, "257 codebooks can sum past 16 bits (at most 256)");
  many.set_accumulation(Accumulation::averaged);
  many.scan_sums(many_codes, sums.data(), 2);
}

TEST_F(Errors, ThreadsAndIsas) {
  expect_error([] { set_num_threads(0); }, "at least 1");
  expect_error([] { parse_isa("sse9"); }, "unknown ISA 'sse9'");
#if defined(__x86_64__)
  expect_error([] { set_isa(Isa::neon); }, "neon is not supported");
#endif
}

}  // namespace
}  // namespace lutmul
