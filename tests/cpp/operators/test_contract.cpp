// The operator contract as one house: every kind is built by one factory and read back by
// one loader, rejects non-finite input by the one rule, and may be shared by many threads
// while others fit and load.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/kernel_registry.h"
#include "lutmul/lutmul.h"
#include "test_util.h"

namespace lutmul {
namespace {

constexpr int64_t kRows = 150, kK = 64, kM = 40;

struct Built {
  std::string kind;
  BuildParams params;
};

// Every built-in kind, with parameters that exercise more than its defaults.
std::vector<Built> every_kind() {
  return {{"dense", {}},
          {"int8", {{"activations", "static"}}},
          {"bf16", {}},
          {"sparse", {{"sparsity", "0.75"}, {"score", "wanda"}}},
          {"sparse24", {}},
          {"channel_pruned", {{"fraction", "0.25"}, {"channels", "inputs"}}},
          {"maddness", {{"ncodebooks", "8"}}},
          {"maddness", {{"ncodebooks", "8"}, {"leaves", "64"}}},
          {"low_rank", {{"rank", "12"}}},
          {"lora", {{"base", "int8"}}}};
}

class Contract : public ::testing::Test {
 protected:
  std::vector<float> w_ = testing::uniform(kK, kM, -1.f, 1.f, 11);
  std::vector<float> bias_ = testing::uniform(1, kM, -1.f, 1.f, 12);
  std::vector<float> x_ = testing::low_rank_rows(kRows, kK, 6, 0.1f, 13);
  MatrixView W() const { return MatrixView::row_major(w_.data(), kK, kM); }
  MatrixView X() const { return MatrixView::row_major(x_.data(), kRows, kK); }
  std::unique_ptr<LinearOperator> make(const Built& b) const {
    const MatrixView calibration = X();
    return build(b.kind, W(), bias_.data(), &calibration, b.params);
  }
};

TEST_F(Contract, EveryBuiltInKindIsRegistered) {
  // Every built-in kind, and nothing else but what a test registers itself.
  const std::vector<std::string> registered = operator_kinds();
  const std::vector<Built> built_in = every_kind();
  for (const Built& b : built_in)
    EXPECT_NE(registered.end(), std::find(registered.begin(), registered.end(), b.kind)) << b.kind;
  for (const std::string& kind : registered)
    EXPECT_TRUE(kind.rfind("test_", 0) == 0 || std::any_of(built_in.begin(), built_in.end(),
                                                           [&](const Built& b) { return b.kind == kind; }))
        << kind;
}

TEST_F(Contract, TheFactoryBuildsWhatTheConstructorsBuild) {
  const MatrixView calibration = X();
  Int8Config config;
  config.activations = ActivationScaling::static_per_tensor;
  const Int8Linear direct(W(), bias_.data(), config, &calibration);
  const std::unique_ptr<LinearOperator> built = make(every_kind()[1]);
  ASSERT_EQ("int8", built->kind());
  EXPECT_EQ(direct.serialize(), built->serialize());
  for (const Built& b : every_kind()) {
    const std::unique_ptr<LinearOperator> op = make(b);
    EXPECT_EQ(b.kind, op->kind());
    EXPECT_EQ(kK, op->input_dim());
    EXPECT_EQ(kM, op->output_dim());
    EXPECT_LT(op->relative_error(X(), W(), bias_.data()), 1.0) << b.kind;
  }
}

TEST_F(Contract, TheFactoryRejectsUnknownKindsAndParameters) {
  const MatrixView calibration = X();
  try {
    build("dense_ish", W(), bias_.data());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("known: bf16, channel_pruned, dense"), std::string::npos) << e.what();
  }
  try {
    build("int8", W(), bias_.data(), &calibration, {{"activation", "static"}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no parameter 'activation'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(build("sparse", W(), bias_.data(), nullptr, {{"sparsity", "most"}}), Error);
  EXPECT_THROW(build("sparse", W(), bias_.data(), nullptr, {{"score", "wanda"}}), Error);  // no calibration
  EXPECT_THROW(build("maddness", W(), bias_.data()), Error);                               // no calibration
  EXPECT_THROW(build("channel_pruned", W(), bias_.data(), nullptr, {{"channels", "rows"}}), Error);
  EXPECT_THROW(register_operator_kind(operator_kind("dense")), Error);  // taken
}

TEST_F(Contract, OneLoaderReadsEveryKindBackBitForBit) {
  for (const Built& b : every_kind()) {
    const std::unique_ptr<LinearOperator> op = make(b);
    const std::vector<uint8_t> bytes = op->serialize();
    const std::unique_ptr<LinearOperator> back = LinearOperator::deserialize(bytes.data(), bytes.size());
    ASSERT_EQ(b.kind, back->kind());
    const Matrix expected = op->forward(X()), got = back->forward(X());
    EXPECT_EQ(0, std::memcmp(expected.data(), got.data(), expected.values.size() * sizeof(float))) << b.kind;
  }
}

// forward_with: every kind gives forward's output through the epilogue. Accumulating adds to Y
// exactly; GELU matches the runtime's GELU pass to 1e-6 where it is fused (in MADDNESS's scan,
// where the multiply and the add round apart; in oneDNN's post-ops for bf16 on AMX, with its
// own erf), and bit for bit where the others run that pass over Y.
TEST_F(Contract, EpiloguesGiveForwardThenTheEpilogue) {
  const int64_t ld = kM + 5;
  std::vector<float> before(static_cast<size_t>(kRows * ld));
  for (size_t i = 0; i < before.size(); ++i) before[i] = static_cast<float>(i % 29) * 0.25f - 3.f;
  const Epilogue gelu{Epilogue::Activation::gelu, false};
  const Epilogue add{Epilogue::Activation::none, true};
  const Epilogue both{Epilogue::Activation::gelu, true};
  for (const Built& b : every_kind()) {
    const std::unique_ptr<LinearOperator> op = make(b);
    const auto* bf16 = dynamic_cast<const Bf16Linear*>(op.get());
    const bool amx_blocks = bf16 != nullptr && bf16->path().find("blocks of") != std::string::npos;
    EXPECT_EQ(b.kind == "maddness" || amx_blocks, op->fuses_epilogue()) << b.kind;
    const Matrix plain = op->forward(X());
    std::vector<float> activated(plain.values);
    detail::active_kernels().runtime.gelu(activated.data(), kM, kM, nullptr, 0, kRows);
    for (const Epilogue& e : {gelu, add, both}) {
      std::vector<float> y = before;
      op->forward_with(X(), y.data(), ld, e);
      for (int64_t r = 0; r < kRows; ++r) {
        for (int64_t j = 0; j < kM; ++j) {
          const float value = e.activation == Epilogue::Activation::gelu ? activated[r * kM + j] : plain(r, j);
          const float expected = e.accumulate ? before[r * ld + j] + value : value;
          if (e.activation == Epilogue::Activation::none || !op->fuses_epilogue()) {
            ASSERT_EQ(expected, y[r * ld + j]) << b.kind << " at " << r << ", " << j;
          } else {
            ASSERT_NEAR(expected, y[r * ld + j], 1e-6 * std::max(1.f, std::fabs(expected))) << b.kind;
          }
        }
        for (int64_t j = kM; j < ld; ++j) ASSERT_EQ(before[r * ld + j], y[r * ld + j]) << "padding, " << b.kind;
      }
    }
    std::vector<float> y = before;
    op->forward_with(MatrixView::row_major(x_.data(), 0, kK), y.data(), ld, both);  // no rows: nothing
    EXPECT_EQ(before, y) << b.kind;
    EXPECT_THROW(op->forward_with(MatrixView::row_major(x_.data(), kRows, kK - 1), y.data(), ld, gelu), Error) << b.kind;
    EXPECT_THROW(op->forward_with(X(), y.data(), kM - 1, add), Error) << b.kind;
  }
}

// A kind a program adds is built and loaded like the built-in ones.
TEST_F(Contract, ProgramsCanRegisterKindsOfTheirOwn) {
  OperatorKind scaled_dense = operator_kind("dense");
  scaled_dense.name = "test_dense_copy";
  register_operator_kind(scaled_dense);
  const std::unique_ptr<LinearOperator> op = build("test_dense_copy", W(), bias_.data());
  EXPECT_EQ("dense", op->kind());  // the builder made a dense operator
  EXPECT_NE(operator_kinds().end(), std::find(operator_kinds().begin(), operator_kinds().end(), "test_dense_copy"));
}

// The finite-values rule of the contract: a NaN in a column every kind reads is an error for
// every kind, in either layout; so is an infinity for every kind that multiplies X, while
// MADDNESS, which only compares, encodes it like any large value and gives a finite Y.
TEST_F(Contract, NonFiniteInputFollowsOneRuleForEveryKind) {
  for (const Built& b : every_kind()) {
    const std::unique_ptr<LinearOperator> op = make(b);
    const bool compares_only = b.kind == "maddness";
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      // Column 0 for most; the kinds that read only some columns get a bad value in every column.
      std::vector<float> x = x_;
      const bool whole_row = b.kind == "maddness" || b.kind == "channel_pruned";
      for (int64_t k = 0; k < (whole_row ? kK : 1); ++k) x[static_cast<size_t>(77 * kK + k)] = bad;
      const std::vector<float> col = testing::to_col_major(x, kRows, kK);
      Matrix y(kRows, kM);
      if (compares_only && std::isinf(bad)) {
        op->forward(MatrixView::row_major(x.data(), kRows, kK), y.data(), kM);
        for (float v : y.values) ASSERT_TRUE(std::isfinite(v)) << b.kind;
        continue;
      }
      EXPECT_THROW(op->forward(MatrixView::row_major(x.data(), kRows, kK), y.data(), kM), Error) << b.kind << " " << bad;
      EXPECT_THROW(op->forward(MatrixView::col_major(col.data(), kRows, kK), y.data(), kM), Error) << b.kind << " " << bad;
    }
  }
}

// One shared operator of every kind, forward from 8 threads at once with batches of 1 to 150
// rows, while 2 more threads fit new operators and save and load files: every result equals
// the single-threaded one, bit for bit.
TEST_F(Contract, SharedOperatorsOfEveryKindGiveSingleThreadedResultsUnderConcurrency) {
  std::vector<std::unique_ptr<LinearOperator>> ops;
  std::vector<std::vector<Matrix>> expected;  // [kind][batch size index]
  const std::vector<int64_t> batches = {1, 3, 17, 64, 150};
  for (const Built& b : every_kind()) {
    ops.push_back(make(b));
    expected.emplace_back();
    for (int64_t n : batches) expected.back().push_back(ops.back()->forward(MatrixView::row_major(x_.data(), n, kK)));
  }
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("lutmul_contract_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::atomic<int> mismatches{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 12; ++round)
        for (size_t o = 0; o < ops.size(); ++o) {
          const size_t batch = static_cast<size_t>(t + round + static_cast<int>(o)) % batches.size();
          const Matrix y = ops[o]->forward(MatrixView::row_major(x_.data(), batches[batch], kK));
          const Matrix& want = expected[o][batch];
          if (std::memcmp(y.data(), want.data(), want.values.size() * sizeof(float)) != 0) ++mismatches;
        }
    });
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      try {
        for (int round = 0; round < 3; ++round)
          for (const Built& b : every_kind()) {
            const std::unique_ptr<LinearOperator> fresh = make(b);
            const std::string path = (dir / (b.kind + std::to_string(t) + ".lutmul")).string();
            fresh->save(path);
            const std::unique_ptr<LinearOperator> back = LinearOperator::load(path);
            if (back->serialize() != fresh->serialize()) ++mismatches;
          }
      } catch (const std::exception&) {
        ++errors;
      }
    });
  for (std::thread& thread : threads) thread.join();
  std::filesystem::remove_all(dir);
  EXPECT_EQ(0, mismatches.load());
  EXPECT_EQ(0, errors.load());
}

}  // namespace
}  // namespace lutmul
