// LoraLinear: the grouped kernels against their scalar reference bit for bit, mixed-adapter
// batches against a per-row double-precision reference over every kind of base, merge and
// unmerge, adapters added and removed while forwards run, and PEFT adapters read back.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <random>
#include <thread>
#include <tuple>

#include "../core/isa_sweep.h"
#include "lutmul/lutmul.h"
#include "safetensors_writer.h"
#include "test_util.h"

namespace lutmul {
namespace {

using testing::Family;
using testing::LevelTest;
using testing::uniform;

struct TestAdapter {
  std::vector<float> a, b;  // K × r, r × M
  int64_t r;
  float alpha;
};

TestAdapter make_adapter(int64_t k, int64_t m, int64_t r, float alpha, uint64_t seed) {
  return {uniform(k, r, -0.5f, 0.5f, seed), uniform(r, m, -0.5f, 0.5f, seed + 1), r, alpha};
}

int32_t add(LoraLinear& op, const std::string& name, const TestAdapter& t) {
  return op.add_adapter(name, MatrixView::row_major(t.a.data(), op.input_dim(), t.r),
                        MatrixView::row_major(t.b.data(), t.r, op.output_dim()), t.alpha);
}

// (alpha/r)·(x·A)·B for one row, in double.
std::vector<double> adapter_term(const TestAdapter& t, const float* x, int64_t k, int64_t m) {
  std::vector<double> xa(static_cast<size_t>(t.r), 0.0), out(static_cast<size_t>(m), 0.0);
  for (int64_t s = 0; s < t.r; ++s)
    for (int64_t i = 0; i < k; ++i) xa[s] += double{x[i]} * t.a[i * t.r + s];
  for (int64_t j = 0; j < m; ++j) {
    for (int64_t s = 0; s < t.r; ++s) out[j] += xa[s] * t.b[s * m + j];
    out[j] *= double{t.alpha} / static_cast<double>(t.r);
  }
  return out;
}

std::vector<int32_t> random_ids(int64_t n, const std::vector<int32_t>& choices, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, choices.size());
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) {
    const size_t c = pick(rng);
    id = c == choices.size() ? LoraLinear::kNoAdapter : choices[c];
  }
  return ids;
}

using Shape = std::tuple<Isa, int64_t, int64_t, int64_t, int64_t>;  // isa, N, K, M, r

// "avx512_N13_K17_M15_r5".
std::string shape_name(const ::testing::TestParamInfo<Shape>& p) {
  return isa_name(std::get<0>(p.param)) + "_N" + std::to_string(std::get<1>(p.param)) + "_K" +
         std::to_string(std::get<2>(p.param)) + "_M" + std::to_string(std::get<3>(p.param)) + "_r" +
         std::to_string(std::get<4>(p.param));
}

// N, K, M and r at each of `levels`.
std::vector<Shape> lora_grid(const std::vector<Isa>& levels) {
  return testing::level_grid(Family::lora, levels, std::vector<int64_t>{1, 13, 70}, std::vector<int64_t>{1, 17, 64},
                             std::vector<int64_t>{1, 15, 33, 80}, std::vector<int64_t>{1, 5, 16});
}

// A batch of the grid's shape over three adapters of ranks r, r + 1 and 2r + 3, its adapter
// terms added at the fixture's level to a Y that already holds values.
class LoraShape : public LevelTest<Family::lora, Shape> {
 protected:
  void SetUp() override {
    LevelTest::SetUp();
    if (IsSkipped()) return;
    const auto [isa, n, k, m, r] = GetParam();
    (void)isa;
    n_ = n, k_ = k, m_ = m, ldy_ = m + 3;
    w_ = uniform(k, m, -1.f, 1.f, 1);
    op_.emplace(std::make_shared<DenseLinear>(MatrixView::row_major(w_.data(), k, m)));
    std::vector<int32_t> ids;
    for (int a = 0; a < 3; ++a)  // ranks r, r + 1, 2r + 3 in one batch
      ids.push_back(add(*op_, "a" + std::to_string(a),
                        make_adapter(k, m, a == 0 ? r : a == 1 ? r + 1 : 2 * r + 3, 0.5f + static_cast<float>(a),
                                     10 + static_cast<uint64_t>(a))));
    row_ids_ = random_ids(n, ids, static_cast<uint64_t>(n * 7 + r));
    x_ = uniform(n, k, -1.f, 1.f, static_cast<uint64_t>(n + k));
    start_ = uniform(n, ldy_, -1.f, 1.f, 99);  // the term is added to what Y holds
    got_ = start_;
    op_->add_adapter_terms(MatrixView::row_major(x_.data(), n, k), row_ids_.data(), got_.data(), ldy_);
  }

  int64_t n_ = 0, k_ = 0, m_ = 0, ldy_ = 0;
  std::vector<float> w_, x_, start_, got_;  // got_: start_ plus the terms at the level
  std::vector<int32_t> row_ids_;
  std::optional<LoraLinear> op_;
};

// Every SIMD level's LoRA kernel against the scalar reference, bit for bit, both layouts.
class LoraGrid : public LoraShape {};

TEST_P(LoraGrid, KernelsEqualTheScalarReference) {
  const std::vector<float> x_col = testing::to_col_major(x_, n_, k_);
  std::vector<float> expected(start_), got_col(start_);
  op_->add_adapter_terms_reference(MatrixView::row_major(x_.data(), n_, k_), row_ids_.data(), expected.data(), ldy_);
  op_->add_adapter_terms(MatrixView::col_major(x_col.data(), n_, k_), row_ids_.data(), got_col.data(), ldy_);
  ASSERT_EQ(0, std::memcmp(expected.data(), got_.data(), expected.size() * sizeof(float))) << isa_name(level());
  ASSERT_EQ(0, std::memcmp(expected.data(), got_col.data(), expected.size() * sizeof(float)));
}

// Every level, the scalar one included: the padding and the rows without an adapter keep
// what Y held.
class LoraRowsGrid : public LoraShape {};

TEST_P(LoraRowsGrid, PaddingAndRowsWithoutAnAdapterUntouched) {
  for (int64_t i = 0; i < n_; ++i) {
    for (int64_t j = m_; j < ldy_; ++j) ASSERT_EQ(got_[i * ldy_ + j], start_[i * ldy_ + j]);  // padding untouched
    if (row_ids_[i] == LoraLinear::kNoAdapter) {
      for (int64_t j = 0; j < m_; ++j) ASSERT_EQ(got_[i * ldy_ + j], start_[i * ldy_ + j]);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, LoraGrid,
                         ::testing::ValuesIn(lora_grid(testing::simd_levels())),
                         shape_name);
INSTANTIATE_TEST_SUITE_P(Shapes, LoraRowsGrid,
                         ::testing::ValuesIn(lora_grid(testing::every_level())),
                         shape_name);

// The threaded adapter terms of every SIMD level against the scalar reference.
class LoraKernel : public LevelTest<Family::lora> {};

TEST_P(LoraKernel, LargeBatchesSplitAcrossThreadsExactly) {
  // Enough work (≈ 100 M multiply-adds) for the adapter term to run on several threads.
  const int64_t n = 1500, k = 512, m = 512;
  const std::vector<float> w = uniform(k, m, -1.f, 1.f, 1);
  LoraLinear op(std::make_shared<DenseLinear>(MatrixView::row_major(w.data(), k, m)));
  std::vector<int32_t> ids;
  for (int a = 0; a < 5; ++a) ids.push_back(add(op, "a" + std::to_string(a), make_adapter(k, m, 64, 1.f, 60 + a)));
  const std::vector<int32_t> row_ids = random_ids(n, ids, 61);
  const std::vector<float> x = uniform(n, k, -1.f, 1.f, 62);
  const int saved = num_threads();
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<float> expected(static_cast<size_t>(n * m), 0.f), got(expected);
    op.add_adapter_terms_reference(MatrixView::row_major(x.data(), n, k), row_ids.data(), expected.data(), m);
    op.add_adapter_terms(MatrixView::row_major(x.data(), n, k), row_ids.data(), got.data(), m);
    ASSERT_EQ(0, std::memcmp(expected.data(), got.data(), expected.size() * sizeof(float))) << threads << " threads";
  }
  set_num_threads(saved);
}

INSTANTIATE_TEST_SUITE_P(Isa, LoraKernel, ::testing::ValuesIn(testing::simd_levels()), testing::LevelName());

// LoraLinear at every level (isa_sweep.h).
class Lora : public LevelTest<Family::lora> {};

TEST_P(Lora, MixedBatchesEqualThePerRowReferenceOnEveryBase) {
  const int64_t n = 150, k = 72, m = 40;
  const std::vector<float> w = uniform(k, m, -1.f, 1.f, 2), bias = uniform(1, m, -1.f, 1.f, 3);
  const std::vector<float> x = testing::low_rank_rows(n, k, 8, 0.2f, 4);
  const MatrixView wv = MatrixView::row_major(w.data(), k, m), xv = MatrixView::row_major(x.data(), n, k);
  LowRankConfig low_rank;
  low_rank.rank = 10;
  const std::vector<std::shared_ptr<const LinearOperator>> bases = {
      std::make_shared<DenseLinear>(wv, bias.data()),
      std::make_shared<Int8Linear>(wv, bias.data()),
      std::make_shared<SparseLinear>(wv, bias.data()),
      std::make_shared<ChannelPrunedLinear>(wv, bias.data()),
      std::make_shared<LowRankLinear>(wv, bias.data(), low_rank),
  };
  std::vector<TestAdapter> adapters;
  for (int64_t r : {1, 4, 16, 7, 33}) adapters.push_back(make_adapter(k, m, r, static_cast<float>(r) * 0.7f, 20 + r));
  for (const auto& base : bases) {
    LoraLinear op(base);
    std::vector<int32_t> ids;
    for (size_t a = 0; a < adapters.size(); ++a) ids.push_back(add(op, "adapter" + std::to_string(a), adapters[a]));
    const std::vector<int32_t> row_ids = random_ids(n, ids, 5);
    const Matrix y = op.forward(xv, row_ids.data());
    const Matrix base_y = base->forward(xv);
    EXPECT_EQ(op.forward(xv).values, base_y.values);  // no ids: the base alone
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> term(static_cast<size_t>(m), 0.0);
      if (row_ids[i] != LoraLinear::kNoAdapter) term = adapter_term(adapters[row_ids[i]], x.data() + i * k, k, m);
      for (int64_t j = 0; j < m; ++j)
        ASSERT_NEAR(y(i, j), base_y(i, j) + term[j], 1e-4 * (1 + std::fabs(term[j]))) << base->kind() << " row " << i;
    }
    // A, B (in panels of 16 outputs: M = 40 padded to 48) and alpha.
    EXPECT_EQ(op.bytes(), base->bytes() + 4 * ((1 + 4 + 16 + 7 + 33) * (k + 48) + 5));
  }
}

TEST_P(Lora, MergeAndUnmergeRoundTrip) {
  const int64_t n = 40, k = 50, m = 30;
  const std::vector<float> w = uniform(k, m, -1.f, 1.f, 6), bias = uniform(1, m, -1.f, 1.f, 7);
  const auto base = std::make_shared<DenseLinear>(MatrixView::row_major(w.data(), k, m), bias.data());
  LoraLinear op(base);
  const TestAdapter first = make_adapter(k, m, 8, 16.f, 30), second = make_adapter(k, m, 3, 2.f, 31);
  const int32_t id_first = add(op, "first", first), id_second = add(op, "second", second);
  const std::vector<float> x = uniform(n, k, -1.f, 1.f, 8);
  const MatrixView xv = MatrixView::row_major(x.data(), n, k);
  std::vector<int32_t> ids(static_cast<size_t>(n), LoraLinear::kNoAdapter);
  for (int64_t i = 0; i < n; i += 3) ids[i] = id_first;
  for (int64_t i = 1; i < n; i += 3) ids[i] = id_second;
  const Matrix before = op.forward(xv, ids.data());

  op.merge("first");
  EXPECT_TRUE(op.merged("first"));
  EXPECT_FALSE(op.merged("second"));
  // W + (alpha/r)·A·B, and rows naming "first" get it once.
  const auto merged_base = std::dynamic_pointer_cast<const DenseLinear>(op.base());
  ASSERT_NE(merged_base, nullptr);
  for (int64_t i = 0; i < k; ++i) {
    std::vector<double> delta(static_cast<size_t>(m), 0.0);
    for (int64_t s = 0; s < first.r; ++s)
      for (int64_t j = 0; j < m; ++j) delta[j] += double{first.a[i * first.r + s]} * first.b[s * m + j];
    for (int64_t j = 0; j < m; ++j)
      ASSERT_NEAR(merged_base->weights()[i * m + j], w[i * m + j] + delta[j] * first.alpha / static_cast<double>(first.r), 1e-5);
  }
  const Matrix after = op.forward(xv, ids.data());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      double expected = before(i, j);
      if (ids[i] != id_first) expected += adapter_term(first, x.data() + i * k, k, m)[j];  // now in every row
      ASSERT_NEAR(after(i, j), expected, 1e-4 * (1 + std::fabs(expected)));
    }
  EXPECT_THROW(op.merge("first"), Error);          // twice
  EXPECT_THROW(op.remove_adapter("first"), Error);  // while merged
  op.merge("second");
  op.unmerge("first");
  op.unmerge("second");
  EXPECT_THROW(op.unmerge("second"), Error);  // not merged
  // The round trip restores W to float rounding of the merged values.
  const auto restored = std::dynamic_pointer_cast<const DenseLinear>(op.base());
  ASSERT_NE(restored, nullptr);
  double worst = 0;
  for (size_t i = 0; i < w.size(); ++i) worst = std::max(worst, std::fabs(double{restored->weights()[i]} - w[i]));
  EXPECT_LT(worst, 4e-6);  // |W + ΔW| ≲ 8 here: a few ulps of that
  EXPECT_EQ(restored->bias(), bias);
  EXPECT_EQ(base->weights(), w);  // the caller's base was never touched
  const Matrix again = op.forward(xv, ids.data());
  for (size_t i = 0; i < again.values.size(); ++i) ASSERT_NEAR(again.values[i], before.values[i], 1e-4);

  // Only a dense base merges.
  LoraLinear quantized(std::make_shared<Int8Linear>(MatrixView::row_major(w.data(), k, m)));
  add(quantized, "first", first);
  EXPECT_THROW(quantized.merge("first"), Error);
  EXPECT_THROW(op.merge("missing"), Error);
}

TEST_P(Lora, AdaptersComeAndGoWhileForwardsRun) {
  const int64_t n = 64, k = 96, m = 48;
  const std::vector<float> w = uniform(k, m, -1.f, 1.f, 9);
  LoraLinear op(std::make_shared<DenseLinear>(MatrixView::row_major(w.data(), k, m)));
  const TestAdapter stable = make_adapter(k, m, 8, 4.f, 40), churn = make_adapter(k, m, 4, 1.f, 41);
  const int32_t stable_id = add(op, "stable", stable);
  const std::vector<float> x = uniform(n, k, -1.f, 1.f, 10);
  const MatrixView xv = MatrixView::row_major(x.data(), n, k);
  std::vector<int32_t> ids(static_cast<size_t>(n), LoraLinear::kNoAdapter);
  for (int64_t i = 0; i < n; i += 2) ids[i] = stable_id;
  const Matrix expected = op.forward(xv, ids.data());

  std::atomic<bool> stop{false};
  std::atomic<int64_t> forwards{0}, stale{0}, wrong{0};
  // Writers start once every reader has been through its loop once: on a loaded 2-core CI
  // machine the 600 writes could otherwise finish before any reader ran, and nothing would
  // have overlapped, leaving forwards at 0 (CI failed here once; this is the likeliest cause).
  std::atomic<int> readers_started{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] {
      std::vector<int32_t> mine = ids;
      bool started = false;
      while (!stop.load()) {
        // Rows of the stable adapter must come out the same whatever else is loaded.
        if (op.forward(xv, ids.data()).values != expected.values) ++wrong;
        // An adapter looked up by name may be gone by the time it is used: then an Error.
        try {
          mine[1] = op.adapter_id("churn" + std::to_string(t % 2));
          op.forward(xv, mine.data());
        } catch (const Error&) {
          ++stale;
        }
        ++forwards;
        if (!started) {
          started = true;
          ++readers_started;
        }
      }
    });
  for (int w_thread = 0; w_thread < 2; ++w_thread)
    threads.emplace_back([&, w_thread] {
      while (readers_started.load() < 3) std::this_thread::yield();
      for (int i = 0; i < 300; ++i) {
        const std::string name = "churn" + std::to_string(w_thread);
        add(op, name, churn);
        op.remove_adapter(name);
      }
    });
  threads[4].join();
  threads[3].join();
  stop = true;
  for (int t = 0; t < 3; ++t) threads[t].join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GE(forwards.load(), 3);
  EXPECT_EQ(op.adapter_names(), std::vector<std::string>{"stable"});
  EXPECT_GE(op.adapter_id("stable"), 0);
}

TEST_P(Lora, BadInputIsAnError) {
  const int64_t k = 12, m = 7;
  const std::vector<float> w = uniform(k, m, -1.f, 1.f, 11);
  EXPECT_THROW(LoraLinear(nullptr), Error);
  LoraLinear op(std::make_shared<DenseLinear>(MatrixView::row_major(w.data(), k, m)));
  TestAdapter t = make_adapter(k, m, 3, 1.f, 50);
  const int32_t id = add(op, "x", t);
  EXPECT_THROW(add(op, "x", t), Error);  // duplicate name
  EXPECT_THROW(add(op, "", t), Error);
  EXPECT_THROW(op.add_adapter("y", MatrixView::row_major(t.a.data(), k - 1, 3), MatrixView::row_major(t.b.data(), 3, m), 1.f),
               Error);
  EXPECT_THROW(op.add_adapter("y", MatrixView::row_major(t.a.data(), k, 3), MatrixView::row_major(t.b.data(), 2, m), 1.f),
               Error);
  EXPECT_THROW(op.add_adapter("y", MatrixView::row_major(t.a.data(), k, 3), MatrixView::row_major(t.b.data(), 3, m),
                              std::numeric_limits<float>::infinity()),
               Error);
  t.a[4] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(add(op, "y", t), Error);
  EXPECT_THROW(op.remove_adapter("nope"), Error);
  EXPECT_THROW(op.adapter_id("nope"), Error);

  std::vector<float> x = uniform(3, k, -1.f, 1.f, 12);
  const MatrixView xv = MatrixView::row_major(x.data(), 3, k);
  std::vector<int32_t> ids = {id, 7, LoraLinear::kNoAdapter};
  EXPECT_THROW(op.forward(xv, ids.data()), Error);  // id 7 was never added
  ids = {id, -2, LoraLinear::kNoAdapter};
  EXPECT_THROW(op.forward(xv, ids.data()), Error);
  ids = {id, id, LoraLinear::kNoAdapter};
  op.remove_adapter("x");
  EXPECT_THROW(op.forward(xv, ids.data()), Error);  // a stale id is never another adapter
  const int32_t again = add(op, "x", make_adapter(k, m, 3, 1.f, 50));
  EXPECT_NE(again, id);
  ids = {again, LoraLinear::kNoAdapter, again};
  x[k + 5] = std::numeric_limits<float>::infinity();  // in a row without an adapter: still an error
  try {
    op.forward(xv, ids.data());
    FAIL() << "accepted a non-finite X";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 1, column 5"), std::string::npos) << e.what();
  }
  // In a row with an adapter the kernels find it (through X·A), for the whole forward and for
  // the adapter terms alone, in either layout.
  x[k + 5] = 0.5f;
  x[2 * k + 7] = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x_col = testing::to_col_major(x, 3, k);
  std::vector<float> y(3 * m);
  for (const MatrixView& view : {xv, MatrixView::col_major(x_col.data(), 3, k)})
    for (bool whole : {true, false})
      try {
        if (whole) {
          op.forward(view, ids.data(), y.data(), m);
        } else {
          op.add_adapter_terms(view, ids.data(), y.data(), m);
        }
        FAIL() << "accepted a NaN in a row with an adapter";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("row 2, column 7"), std::string::npos) << e.what();
      }
  // Finite inputs whose product overflows float.
  const std::vector<float> ones_a(static_cast<size_t>(k), 1.f), ones_b(static_cast<size_t>(m), 1.f);
  const int32_t ones = op.add_adapter("ones", MatrixView::row_major(ones_a.data(), k, 1),
                                      MatrixView::row_major(ones_b.data(), 1, m), 1.f);
  x[2 * k + 7] = 3e38f;
  x[2 * k + 8] = 3e38f;
  ids = {again, LoraLinear::kNoAdapter, ones};
  try {
    op.forward(xv, ids.data(), y.data(), m);
    FAIL() << "accepted an overflow";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("overflowed"), std::string::npos) << e.what();
  }
  EXPECT_THROW(op.forward(MatrixView::row_major(x.data(), 3, k - 1), ids.data(), y.data(), m), Error);
  EXPECT_EQ(op.forward(MatrixView::row_major(x.data(), 0, k), ids.data()).rows, 0);
}

INSTANTIATE_TEST_SUITE_P(Isa, Lora, ::testing::ValuesIn(testing::every_level()), testing::LevelName());

// ---- PEFT ----

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name)
      : path(std::filesystem::temp_directory_path() / ("lutmul_" + name + "_" + std::to_string(getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  void write(const std::string& file, const std::string& text) const {
    testing::write_bytes((path / file).string(), std::vector<uint8_t>(text.begin(), text.end()));
  }
  void write(const std::string& file, const std::vector<uint8_t>& bytes) const {
    testing::write_bytes((path / file).string(), bytes);
  }
};

// torch layout: lora_A.weight is r × K, lora_B.weight M × r.
std::vector<float> transpose(const std::vector<float>& v, int64_t rows, int64_t cols) {
  return testing::to_col_major(v, rows, cols);
}

std::vector<uint8_t> bf16_bytes(const std::vector<float>& values) {  // truncation; the test data is bf16-exact
  std::vector<uint8_t> out;
  for (float v : values) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    out.push_back(static_cast<uint8_t>((bits >> 16) & 0xff));
    out.push_back(static_cast<uint8_t>(bits >> 24));
  }
  return out;
}

TEST(Peft, AdaptersLoadBackExactly) {
  const int64_t k = 20, m = 12, r = 4;
  const std::string q = "base_model.model.layers.0.self_attn.q_proj", v = "base_model.model.layers.0.self_attn.v_proj";
  // Values on a 1/64 grid in [−2, 2): exact in float and in bf16.
  auto grid = [](int64_t rows, int64_t cols, uint64_t seed) {
    std::vector<float> values = uniform(rows, cols, -2.f, 2.f, seed);
    for (float& x : values) x = std::round(x * 64.f) / 64.f;
    return values;
  };
  const std::vector<float> qa = grid(k, r, 1), qb = grid(r, m, 2), va = grid(k, 2 * r, 3), vb = grid(2 * r, m, 4);
  TempDir dir("peft_exact");
  dir.write("adapter_config.json",
            R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"],
                "rank_pattern": {"v_proj": 8}, "alpha_pattern": {"v_proj": 32}, "fan_in_fan_out": false,
                "use_rslora": false, "bias": "none", "base_model_name_or_path": "tiny"})");
  dir.write("adapter_model.safetensors",
            testing::safetensors_file({{q + ".lora_A.weight", "F32", {r, k}, testing::float_bytes(transpose(qa, k, r))},
                                       {q + ".lora_B.weight", "F32", {m, r}, testing::float_bytes(transpose(qb, r, m))},
                                       {v + ".lora_A.weight", "BF16", {2 * r, k}, bf16_bytes(transpose(va, k, 2 * r))},
                                       {v + ".lora_B.weight", "BF16", {m, 2 * r}, bf16_bytes(transpose(vb, 2 * r, m))}},
                                      R"({"format": "pt"})"));
  EXPECT_EQ(peft_modules(dir.path.string()), (std::vector<std::string>{q, v}));
  EXPECT_THROW(read_peft_adapter(dir.path.string()), Error);  // two modules: which one?
  const PeftAdapter pq = read_peft_adapter(dir.path.string(), "q_proj");
  EXPECT_EQ(pq.module, q);
  EXPECT_EQ(pq.rank, r);
  EXPECT_EQ(pq.alpha, 8.f);
  EXPECT_EQ(pq.a, qa);
  EXPECT_EQ(pq.b, qb);
  const PeftAdapter pv = read_peft_adapter(dir.path.string(), "layers.0.self_attn.v_proj");
  EXPECT_EQ(pv.rank, 2 * r);
  EXPECT_EQ(pv.alpha, 32.f);
  EXPECT_EQ(pv.a, va);
  EXPECT_EQ(pv.b, vb);

  const std::vector<float> w = uniform(k, m, -1.f, 1.f, 5);
  LoraLinear op(std::make_shared<DenseLinear>(MatrixView::row_major(w.data(), k, m)));
  const int32_t id = op.load_peft(dir.path.string(), "tuned", "q_proj");
  EXPECT_EQ(op.adapter("tuned")->a, qa);
  EXPECT_EQ(op.adapter("tuned")->b(), qb);
  EXPECT_EQ(op.adapter("tuned")->alpha, 8.f);
  const std::vector<float> x = uniform(2, k, -1.f, 1.f, 6);
  const std::vector<int32_t> ids = {id, id};
  const Matrix y = op.forward(MatrixView::row_major(x.data(), 2, k), ids.data());
  const Matrix base_y = op.forward(MatrixView::row_major(x.data(), 2, k));
  const std::vector<double> term = adapter_term({qa, qb, r, 8.f}, x.data(), k, m);
  for (int64_t j = 0; j < m; ++j) EXPECT_NEAR(y(0, j), base_y(0, j) + term[j], 1e-4);
  // A layer of another shape does not fit this operator.
  LoraLinear other(std::make_shared<DenseLinear>(MatrixView::row_major(w.data(), m, k)));
  EXPECT_THROW(other.load_peft(dir.path.string(), "tuned", "q_proj"), Error);
}

TEST(Peft, RsLoraScalesByTheSquareRootOfTheRank) {
  const int64_t k = 6, m = 5, r = 4;
  TempDir dir("peft_rslora");
  dir.write("adapter_config.json", R"({"r": 4, "lora_alpha": 3, "use_rslora": true, "target_modules": "lin"})");
  dir.write("adapter_model.safetensors",
            testing::safetensors_file({{"lin.lora_A.weight", "F32", {r, k}, testing::float_bytes(uniform(r, k, -1, 1, 1))},
                                       {"lin.lora_B.weight", "F32", {m, r}, testing::float_bytes(uniform(m, r, -1, 1, 2))}}));
  const PeftAdapter p = read_peft_adapter(dir.path.string());
  EXPECT_FLOAT_EQ(p.alpha / static_cast<float>(p.rank), 3.f / 2.f);  // alpha/√r = 3/2
}

TEST(Peft, BadAdaptersAreErrors) {
  const int64_t k = 6, m = 5, r = 2;
  const std::vector<uint8_t> a = testing::float_bytes(uniform(r, k, -1, 1, 1)), b = testing::float_bytes(uniform(m, r, -1, 1, 2));
  const std::string good_config = R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["fc"]})";
  auto expect_error = [&](const std::string& config, const std::vector<testing::RawTensor>& tensors,
                          const std::string& fragment) {
    TempDir dir("peft_bad");
    if (!config.empty()) dir.write("adapter_config.json", config);
    dir.write("adapter_model.safetensors", testing::safetensors_file(tensors));
    try {
      read_peft_adapter(dir.path.string());
      FAIL() << "accepted; expected an error with \"" << fragment << "\"";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  const std::vector<testing::RawTensor> pair = {{"m.fc.lora_A.weight", "F32", {r, k}, a},
                                                {"m.fc.lora_B.weight", "F32", {m, r}, b}};
  expect_error("", pair, "adapter_config.json");
  expect_error("{not json", pair, "not valid JSON");
  expect_error(R"({"r": 2, "lora_alpha": 4, "peft_type": "IA3"})", pair, "peft_type");
  expect_error(R"({"r": 2, "lora_alpha": 4, "use_dora": true})", pair, "DoRA");
  expect_error(R"({"r": 0, "lora_alpha": 4})", pair, "r must be a positive integer");
  expect_error(R"({"r": 2})", pair, "lora_alpha");
  expect_error(R"({"r": 3, "lora_alpha": 4})", pair, "says r = 3");
  expect_error(R"({"r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]})", pair, "not among target_modules");
  expect_error(good_config, {pair[0]}, "no \"m.fc.lora_B.weight\"");
  expect_error(good_config, {{"m.fc.lora_A.weight", "F32", {r, k}, a}, {"m.fc.lora_B.weight", "F32", {r, m}, b}},
               "must be r x K");
  expect_error(good_config, {{"m.fc.weight", "F32", {r, k}, a}}, "no \"lora_A.weight\" tensor");
  expect_error(good_config, {pair[0], pair[1], {"m.fc.lora_B.bias", "F32", {m}, testing::float_bytes(uniform(1, m, 0, 1, 3))}},
               "lora_bias");
  expect_error(good_config, {{"m.fc.lora_A.weight", "I32", {r, k}, a}, pair[1]}, "convert to float");
  EXPECT_THROW(read_peft_adapter("/nonexistent/adapter"), Error);
}

}  // namespace
}  // namespace lutmul
