// The public API end to end: layouts, encode/scan agreement, dequantisation, threads,
// determinism, several weights on one encoder.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "../core/isa_sweep.h"
#include "lutmul/lutmul.h"
#include "test_util.h"

namespace lutmul {
namespace {

using testing::exact_product;
using testing::low_rank_rows;
using testing::relative_error;

// Run at every ISA level (isa_sweep.h), the model fitted and used at that level, with 16-
// and 64-leaf trees.
class Api : public testing::LevelTest<testing::Family::maddness, std::tuple<Isa, int>> {
 protected:
  static int leaves() { return std::get<1>(GetParam()); }
  static MaddnessConfig config_for_test() {
    MaddnessConfig config;
    config.ncodebooks = kCodebooks;
    config.leaves = leaves();
    return config;
  }

  static constexpr int64_t kTrain = 1500, kTest = 333, kDim = 70, kOut = 11;
  static constexpr int kCodebooks = 9;

  void SetUp() override {
    LevelTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_EQ(level(), active_isa());
    train_ = low_rank_rows(kTrain + kTest, kDim, 6, 0.1f, 42);
    test_.assign(train_.begin() + kTrain * kDim, train_.end());
    train_.resize(kTrain * kDim);
    weights_ = testing::uniform(kDim, kOut, -1.f, 1.f, 3);
    for (int64_t j = 0; j < kOut; ++j) bias_.push_back(0.5f * static_cast<float>(j) - 2.f);
    model_ = Maddness(config_for_test());
    model_.fit(MatrixView::row_major(train_.data(), kTrain, kDim), MatrixView::row_major(weights_.data(), kDim, kOut),
               bias_.data());
  }

  std::vector<float> train_, test_, weights_, bias_;
  Maddness model_;
};

TEST_P(Api, LayoutsAndEntryPointsAgreeExactly) {
  const Matrix y = model_.matmul(MatrixView::row_major(test_.data(), kTest, kDim));
  const std::vector<float> col = testing::to_col_major(test_, kTest, kDim);
  const Matrix y_col = model_.matmul(MatrixView::col_major(col.data(), kTest, kDim));
  EXPECT_EQ(y.values, y_col.values);

  // Into a caller's buffer with a padded leading dimension: padding untouched.
  const int64_t ldy = kOut + 4;
  std::vector<float> buffer(static_cast<size_t>(kTest * ldy), 123.f);
  model_.matmul(MatrixView::row_major(test_.data(), kTest, kDim), buffer.data(), ldy);
  for (int64_t i = 0; i < kTest; ++i) {
    for (int64_t j = 0; j < kOut; ++j) ASSERT_EQ(y(i, j), buffer[i * ldy + j]);
    for (int64_t j = kOut; j < ldy; ++j) ASSERT_EQ(123.f, buffer[i * ldy + j]);
  }

  const EncodedRows codes = model_.encode(MatrixView::row_major(test_.data(), kTest, kDim));
  std::vector<float> scanned(static_cast<size_t>(kTest * kOut));
  model_.scan(codes, scanned.data(), kOut);
  EXPECT_EQ(y.values, scanned);
}

TEST_P(Api, CodesFollowTheTrees) {
  const EncodedRows codes = model_.encode(MatrixView::row_major(test_.data(), kTest, kDim));
  ASSERT_EQ(kTest, codes.rows());
  for (int64_t i = 0; i < kTest; ++i)
    for (int c = 0; c < kCodebooks; ++c) {
      int node = 0;
      ASSERT_EQ(leaves() == 64 ? 6 : 4, model_.tree_depth());
      for (int level = 0; level < model_.tree_depth(); ++level) {
        const int dim = model_.split_dim(c, level);
        ASSERT_GE(dim, model_.subspace_begin(c));
        ASSERT_LT(dim, model_.subspace_end(c));
        node = 2 * node + (test_[i * kDim + dim] > model_.threshold(c, level, node) ? 1 : 0);
      }
      ASSERT_EQ(node, codes.code(i, c)) << "row " << i << " codebook " << c;
    }
  const std::vector<uint8_t> flat = codes.unpacked();
  EXPECT_EQ(codes.code(kTest - 1, kCodebooks - 1), flat.back());
}

TEST_P(Api, OutputsAreTheDequantisedTableSums) {
  const EncodedRows codes = model_.encode(MatrixView::row_major(test_.data(), kTest, kDim));
  const Matrix y = model_.matmul(MatrixView::row_major(test_.data(), kTest, kDim));
  const auto& q = model_.quantized_tables();
  // Tables per output: codebook pairs of 16 entries (a phantom one for odd C), or 64 each.
  const int table_bytes = leaves() == 16 ? (kCodebooks + 1) / 2 * 32 : kCodebooks * 64;
  ASSERT_EQ(static_cast<size_t>(kOut * table_bytes), q.size());
  EXPECT_EQ(0u, reinterpret_cast<uintptr_t>(q.data()) % 64) << "the scans read tables in whole cache lines";
  for (int64_t i = 0; i < kTest; ++i)
    for (int64_t j = 0; j < kOut; ++j) {
      double sum = 0;
      for (int c = 0; c < kCodebooks; ++c) {
        ASSERT_LT(codes.code(i, c), leaves());
        sum += q[j * table_bytes + c * leaves() + codes.code(i, c)];
      }
      const double expected = sum / model_.table_scale(j) + model_.table_offset(j) + bias_[j];
      ASSERT_NEAR(expected, y(i, j), 1e-4 * (1 + std::fabs(expected)));
    }
}

// Outputs of very different sizes: each gets its own table scale, so the small ones are not
// rounded away. With one scale for all, the 1e-3 column would round to zero tables; here every
// column stays within 5 % of its float-table outputs (1.4-1.9 % measured).
TEST(TableQuantisation, EveryOutputKeepsItsOwnPrecision) {
  const int64_t n = 2000, d = 32, m = 4, test = 300;
  const std::vector<float> a = testing::low_rank_rows(n, d, 8, 0.2f, 11), x = testing::low_rank_rows(test, d, 8, 0.2f, 12);
  std::vector<float> b = testing::uniform(d, m, -1.f, 1.f, 13);
  const float column_scale[m] = {1e-3f, 1.f, 30.f, 1e3f};
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < m; ++j) b[i * m + j] *= column_scale[j];
  MaddnessConfig config;
  config.ncodebooks = 8;
  Maddness model(config);
  model.fit(MatrixView::row_major(a.data(), n, d), MatrixView::row_major(b.data(), d, m));
  const auto& q = model.quantized_tables();
  for (int64_t j = 0; j < m; ++j) {
    int widest = 0;
    for (int c = 0; c < config.ncodebooks; ++c) {
      const uint8_t* table = q.data() + (j * (config.ncodebooks / 2) + c / 2) * 32 + (c % 2) * 16;
      EXPECT_EQ(0, *std::min_element(table, table + 16)) << "output " << j << " codebook " << c;
      widest = std::max<int>(widest, *std::max_element(table, table + 16));
    }
    EXPECT_EQ(255, widest) << "output " << j;
  }
  const MatrixView xv = MatrixView::row_major(x.data(), test, d);
  const Matrix eight_bit = model.matmul(xv);
  model.set_table_mode(TableMode::float32);
  const Matrix float_tables = model.matmul(xv);
  for (int64_t j = 0; j < m; ++j) {
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < test; ++i) {
      diff += std::pow(eight_bit(i, j) - float_tables(i, j), 2);
      norm += std::pow(float_tables(i, j), 2);
    }
    EXPECT_LT(std::sqrt(diff / norm), 0.05) << "output " << j << " (column scale " << column_scale[j] << ")";
  }
}

TEST_P(Api, FloatTablesAndAveragingStayCloseToExactMode) {
  const MatrixView a = MatrixView::row_major(test_.data(), kTest, kDim);
  const std::vector<float> exact = exact_product(test_, weights_, kTest, kDim, kOut);
  std::vector<float> exact_with_bias = exact;
  for (int64_t i = 0; i < kTest; ++i)
    for (int64_t j = 0; j < kOut; ++j) exact_with_bias[i * kOut + j] += bias_[j];
  const double err_u8 = relative_error(exact_with_bias, model_.matmul(a).values);
  model_.set_table_mode(TableMode::float32);
  const double err_f32 = relative_error(exact_with_bias, model_.matmul(a).values);
  model_.set_table_mode(TableMode::uint8);
  EXPECT_LT(err_f32, 0.5);
  EXPECT_LT(std::fabs(err_u8 - err_f32), 0.01);
  if (leaves() != 16) {  // averaging is a 16-leaf scan mode
    EXPECT_THROW(model_.set_accumulation(Accumulation::averaged), Error);
    return;
  }
  model_.set_accumulation(Accumulation::averaged);
  const double err_avg = relative_error(exact_with_bias, model_.matmul(a).values);
  EXPECT_LT(err_avg, err_u8 * 1.25 + 0.01);
}

TEST_P(Api, ThreadCountChangesNothing) {
  const MatrixView a = MatrixView::row_major(test_.data(), kTest, kDim);
  const MatrixView b = MatrixView::row_major(weights_.data(), kDim, kOut);
  const MatrixView t = MatrixView::row_major(train_.data(), kTrain, kDim);
  set_num_threads(1);
  const MaddnessConfig config = config_for_test();
  Maddness one(config);
  one.fit(t, b, bias_.data());
  const Matrix y1 = one.matmul(a);
  set_num_threads(2);
  Maddness two(config);
  two.fit(t, b, bias_.data());
  const Matrix y2 = two.matmul(a);
  EXPECT_EQ(one.prototypes(), two.prototypes());
  EXPECT_EQ(y1.values, y2.values);
  EXPECT_EQ(y1.values, one.matmul(a).values);
}

TEST_P(Api, OneEncoderSeveralWeights) {
  Maddness shared(config_for_test());
  shared.fit_encoder(MatrixView::row_major(train_.data(), kTrain, kDim));
  EXPECT_FALSE(shared.has_weights());
  const std::vector<float> other = testing::uniform(kDim, 4, -2.f, 2.f, 77);
  shared.set_weights(MatrixView::row_major(weights_.data(), kDim, kOut), bias_.data());
  const MatrixView a = MatrixView::row_major(test_.data(), kTest, kDim);
  EXPECT_EQ(model_.matmul(a).values, shared.matmul(a).values);
  // B given column-major gives the same tables.
  const std::vector<float> other_col = testing::to_col_major(other, kDim, 4);
  shared.set_weights(MatrixView::row_major(other.data(), kDim, 4));
  const Matrix y_row = shared.matmul(a);
  shared.set_weights(MatrixView::col_major(other_col.data(), kDim, 4));
  EXPECT_EQ(y_row.values, shared.matmul(a).values);
  EXPECT_EQ(4, y_row.cols);
}

TEST_P(Api, ConcurrentCallsOnOneModelAgree) {
  const MatrixView a = MatrixView::row_major(test_.data(), kTest, kDim);
  const Matrix expected = model_.matmul(a);
  std::vector<Matrix> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep) results[t] = model_.matmul(a);
    });
  for (auto& t : threads) t.join();
  for (const Matrix& r : results) EXPECT_EQ(expected.values, r.values);
}

// A producer writing A block by block (here a row transform, as a LayerNorm would be): the
// encoding fused with it gives matmul's bits on the finished A, in either layout, at one and
// two threads, with every row produced once in whole 64-row blocks.
TEST_P(Api, ProducedRowsGiveMatmulsBits) {
  const auto transformed = [&](int64_t i, int64_t j) { return 0.75f * test_[i * kDim + j] - 0.125f * static_cast<float>(j % 5); };
  for (const bool col_major : {false, true}) {
    for (const int threads : {1, 2}) {
      set_num_threads(threads);
      std::vector<float> a(static_cast<size_t>(kTest * kDim), std::numeric_limits<float>::quiet_NaN());
      const MatrixView view = col_major ? MatrixView::col_major(a.data(), kTest, kDim) : MatrixView::row_major(a.data(), kTest, kDim);
      std::vector<int> produced(kTest, 0);
      std::mutex calls_lock;
      bool aligned = true;
      const auto produce = [&](int64_t begin, int64_t end) {
        {
          const std::lock_guard<std::mutex> hold(calls_lock);
          aligned = aligned && begin % 64 == 0 && (end % 64 == 0 || end == kTest) && begin < end;
          for (int64_t i = begin; i < end; ++i) ++produced[static_cast<size_t>(i)];
        }
        for (int64_t i = begin; i < end; ++i)
          for (int64_t j = 0; j < kDim; ++j) a[static_cast<size_t>(col_major ? j * kTest + i : i * kDim + j)] = transformed(i, j);
      };
      Matrix fused(kTest, kOut);
      model_.matmul_produced(view, produce, fused.data(), kOut);
      EXPECT_TRUE(aligned);
      EXPECT_EQ(std::vector<int>(kTest, 1), produced);
      EXPECT_EQ(model_.matmul(view).values, fused.values) << (col_major ? "column-major" : "row-major") << ", " << threads << " threads";
      // With the epilogue: accumulated into Y as matmul would.
      Matrix twice = fused;
      model_.matmul_produced(view, produce, twice.data(), kOut, Epilogue{Epilogue::Activation::none, true});
      Matrix expected = fused;
      model_.matmul(view, expected.data(), kOut, Epilogue{Epilogue::Activation::none, true});
      EXPECT_EQ(expected.values, twice.values);
    }
  }
  set_num_threads(1);
}

// Blocks encoded in any order, from several threads at once, give encode()'s bytes.
TEST_P(Api, RowsEncodedBlockByBlockEqualEncode) {
  const MatrixView a = MatrixView::row_major(test_.data(), kTest, kDim);
  const EncodedRows whole = model_.encode(a);
  EncodedRows pieces(kTest, kCodebooks, leaves());
  std::vector<std::thread> threads;
  for (int64_t first = 0; first < kTest; first += 128)
    threads.emplace_back([&, first] {
      // Two blocks per thread, the later one first.
      const int64_t middle = std::min<int64_t>(first + 64, kTest), end = std::min<int64_t>(first + 128, kTest);
      model_.encode_rows(a.row_range(middle, end - middle), middle, pieces);
      model_.encode_rows(a.row_range(first, middle - first), first, pieces);
    });
  for (auto& t : threads) t.join();
  ASSERT_EQ(whole.packed_bytes(), pieces.packed_bytes());
  EXPECT_EQ(0, std::memcmp(whole.packed_data(), pieces.packed_data(), whole.packed_bytes()));
}

// The producer's exception reaches the caller, from either thread.
TEST_P(Api, ProducerExceptionsReachTheCaller) {
  std::vector<float> a(test_);
  const MatrixView view = MatrixView::row_major(a.data(), kTest, kDim);
  Matrix y(kTest, kOut);
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    const auto produce = [](int64_t begin, int64_t) {
      if (begin == 256) throw std::runtime_error("the producer failed at row 256");
    };
    try {
      model_.matmul_produced(view, produce, y.data(), kOut);
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ("the producer failed at row 256", e.what());
    }
  }
  set_num_threads(1);
}

uint16_t bf16_of(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return static_cast<uint16_t>((bits & 0x7fffffffu) > 0x7f800000u ? (bits >> 16) | 0x40u
                                                                   : (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

float float_of_bf16(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// Narrow outputs: bf16 is matmul's float Y rounded to nearest even (epilogue included), and
// the integer sums give matmul's Y through sum_scale and sum_offset, in every scan mode, at
// one and two threads, with Y's padding columns untouched.
TEST_P(Api, NarrowOutputsAreMatmulRoundedAndItsSums) {
  const MatrixView a = MatrixView::row_major(test_.data(), kTest, kDim);
  const int64_t ldy = kOut + 2;
  std::vector<uint16_t> old(static_cast<size_t>(kTest * ldy));
  for (size_t i = 0; i < old.size(); ++i) old[i] = bf16_of(static_cast<float>(i % 17) * 0.25f - 2.f);
  std::vector<std::pair<TableMode, Accumulation>> modes = {{TableMode::uint8, Accumulation::exact},
                                                           {TableMode::float32, Accumulation::exact}};
  if (leaves() == 16) modes.emplace_back(TableMode::uint8, Accumulation::averaged);
  for (const auto& [tables, accumulation] : modes) {
    model_.set_table_mode(tables);
    model_.set_accumulation(accumulation);
    const std::string mode = std::string(tables == TableMode::uint8 ? "8-bit" : "float") + " tables, " +
                             (accumulation == Accumulation::exact ? "exact" : "averaged");
    const EncodedRows codes = model_.encode(a);
    for (const int threads : {1, 2}) {
      set_num_threads(threads);
      for (const Epilogue epilogue : {Epilogue{}, Epilogue{Epilogue::Activation::gelu, false},
                                      Epilogue{Epilogue::Activation::none, true}, Epilogue{Epilogue::Activation::gelu, true}}) {
        std::vector<float> y(old.size());
        for (size_t i = 0; i < y.size(); ++i) y[i] = float_of_bf16(old[i]);
        model_.matmul(a, y.data(), ldy, epilogue);
        std::vector<uint16_t> expected(y.size());
        for (size_t i = 0; i < y.size(); ++i) expected[i] = bf16_of(y[i]);
        std::vector<uint16_t> got = old;
        model_.matmul_bf16(a, got.data(), ldy, epilogue);
        ASSERT_EQ(expected, got) << mode << ", " << threads << " threads";
        got = old;
        model_.scan_bf16(codes, got.data(), ldy, epilogue);
        ASSERT_EQ(expected, got) << mode << ", scan_bf16";
      }
      std::vector<uint16_t> sums(old.size(), 0xBEEF);
      if (tables == TableMode::float32) {
        EXPECT_THROW(model_.scan_sums(codes, sums.data(), ldy), Error);
        continue;
      }
      model_.scan_sums(codes, sums.data(), ldy);
      std::vector<float> y(old.size(), -1.f);
      model_.matmul(a, y.data(), ldy);
      for (int64_t i = 0; i < kTest; ++i) {
        for (int64_t j = 0; j < kOut; ++j) {
          const float scaled = static_cast<float>(sums[i * ldy + j]) * model_.sum_scale(j);
          ASSERT_EQ(y[i * ldy + j], scaled + model_.sum_offset(j)) << mode << ", row " << i << ", output " << j;
        }
        for (int64_t j = kOut; j < ldy; ++j) ASSERT_EQ(0xBEEF, sums[i * ldy + j]) << "padding column written";
      }
    }
  }
  model_.set_table_mode(TableMode::uint8);
  model_.set_accumulation(Accumulation::exact);
  set_num_threads(1);
}

TEST_P(Api, EmptyInputGivesEmptyOutput) {
  const Matrix y = model_.matmul(MatrixView::row_major(test_.data(), 0, kDim));
  EXPECT_EQ(0, y.rows);
  EXPECT_EQ(kOut, y.cols);
}

INSTANTIATE_TEST_SUITE_P(Isa, Api, ::testing::ValuesIn(testing::cartesian(testing::every_level(), std::vector<int>{16, 64})),
                         [](const ::testing::TestParamInfo<std::tuple<Isa, int>>& param_info) {
                           return isa_name(std::get<0>(param_info.param)) + "_K" + std::to_string(std::get<1>(param_info.param));
                         });

}  // namespace
}  // namespace lutmul
