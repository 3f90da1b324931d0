// Operator files: every kind round-trips to bit-identical outputs, and damaged, truncated,
// foreign or lying files are rejected with lutmul::Error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>

#include "lutmul/lutmul.h"
#include "test_util.h"

namespace lutmul {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kN = 70, kK = 64, kM = 20;

// Every kind of operator, built from the same weights and calibration rows.
std::vector<std::pair<std::string, std::function<std::unique_ptr<LinearOperator>()>>> makers() {
  static const std::vector<float> w = testing::uniform(kK, kM, -1.f, 1.f, 11);
  static const std::vector<float> bias = testing::uniform(1, kM, -1.f, 1.f, 12);
  static const std::vector<float> calibration = testing::low_rank_rows(400, kK, 6, 0.1f, 13);
  const MatrixView W = MatrixView::row_major(w.data(), kK, kM);
  const MatrixView C = MatrixView::row_major(calibration.data(), 400, kK);
  // An int8 operator calibrated on C with these settings.
  const auto int8 = [=](ActivationScaling activations, double percentile, double smoothing) {
    return [=]() -> std::unique_ptr<LinearOperator> {
      Int8Config config;
      config.activations = activations;
      config.calibration_percentile = percentile;
      config.smoothing = smoothing;
      return std::make_unique<Int8Linear>(W, bias.data(), config, &C);
    };
  };
  return {
      {"dense", [=] { return std::make_unique<DenseLinear>(W, bias.data()); }},
      {"int8", [=] { return std::make_unique<Int8Linear>(W, bias.data()); }},
      {"int8_static", int8(ActivationScaling::static_per_tensor, 99.5, 0.0)},
      {"int8_smoothed", int8(ActivationScaling::dynamic_per_row, 100.0, 0.5)},
      {"int8_static_smoothed", int8(ActivationScaling::static_per_tensor, 100.0, 0.7)},
      {"sparse",
       [=] {
         SparseConfig config;
         config.sparsity = 0.8;
         return std::make_unique<SparseLinear>(W, bias.data(), config, &C);
       }},
      {"sparse24", [=] { return std::make_unique<Sparse24Linear>(W, bias.data()); }},
      {"channel_pruned", [=] { return std::make_unique<ChannelPrunedLinear>(W, bias.data()); }},
      {"low_rank",
       [=] {
         LowRankConfig config;
         config.rank = 9;
         config.data_aware = true;
         return std::make_unique<LowRankLinear>(W, bias.data(), config, &C);
       }},
      {"lora_over_int8",
       [=] {
         auto lora = std::make_unique<LoraLinear>(std::make_shared<Int8Linear>(W, bias.data()));
         const std::vector<float> a = testing::uniform(kK, 4, -0.3f, 0.3f, 15), b = testing::uniform(4, kM, -0.3f, 0.3f, 16);
         lora->add_adapter("one", MatrixView::row_major(a.data(), kK, 4), MatrixView::row_major(b.data(), 4, kM), 8.f);
         return lora;
       }},
      {"maddness",
       [=] {
         MaddnessConfig config;
         config.ncodebooks = 8;
         return std::make_unique<MaddnessLinear>(W, bias.data(), C, config);
       }},
  };
}

class OperatorFile : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lutmul_opfile_" + std::to_string(::getpid()) + "_" + std::to_string(GetParam()));
    fs::create_directories(dir_);
    op_ = makers()[GetParam()].second();
    x_ = testing::low_rank_rows(kN, kK, 6, 0.1f, 14);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::vector<float> forward(const LinearOperator& op) const {
    return op.forward(MatrixView::row_major(x_.data(), kN, kK)).values;
  }

  fs::path dir_;
  std::unique_ptr<LinearOperator> op_;
  std::vector<float> x_;
};

TEST_P(OperatorFile, RoundTripGivesTheSameOperator) {
  const fs::path path = dir_ / "op.lutmul";
  op_->save(path.string());
  const std::unique_ptr<LinearOperator> loaded = LinearOperator::load(path.string());
  EXPECT_EQ(op_->kind(), loaded->kind());
  EXPECT_EQ(op_->input_dim(), loaded->input_dim());
  EXPECT_EQ(op_->output_dim(), loaded->output_dim());
  EXPECT_EQ(op_->bytes(), loaded->bytes());
  EXPECT_EQ(op_->multiply_adds_per_row(), loaded->multiply_adds_per_row());
  EXPECT_EQ(forward(*op_), forward(*loaded));
  EXPECT_EQ(op_->serialize(), loaded->serialize());
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir_)) files += entry.is_regular_file() ? 1 : 0;
  EXPECT_EQ(1, files);  // no temporary left behind
}

TEST_P(OperatorFile, DamagedFilesAreRejected) {
  const std::vector<uint8_t> good = op_->serialize();
  for (size_t i = 0; i < good.size(); i += 1 + good.size() / 200) {
    std::vector<uint8_t> bad = good;
    bad[i] ^= 0x10;
    EXPECT_THROW(LinearOperator::deserialize(bad.data(), bad.size()), Error) << "byte " << i;
  }
  for (size_t length = 0; length < good.size(); length += 1 + good.size() / 200)
    EXPECT_THROW(LinearOperator::deserialize(good.data(), length), Error) << "length " << length;
}

INSTANTIATE_TEST_SUITE_P(Kinds, OperatorFile, ::testing::Range<size_t>(0, makers().size()),
                         [](const ::testing::TestParamInfo<size_t>& param) { return makers()[param.param].first; });

// CRC-32 (IEEE, reflected), so that a test can forge a file whose checksum is right but
// whose contents lie.
uint32_t crc32(const uint8_t* data, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void reseal(std::vector<uint8_t>& file) {
  const uint32_t crc = crc32(file.data() + 24, file.size() - 28);
  std::memcpy(file.data() + file.size() - 4, &crc, 4);
}

TEST(OperatorFileContents, LyingContentsWithAValidChecksumAreRejected) {
  const std::vector<float> w = testing::uniform(kK, kM, -1.f, 1.f, 1);
  const SparseLinear sparse(MatrixView::row_major(w.data(), kK, kM));
  std::vector<uint8_t> file = sparse.serialize();
  std::vector<uint8_t> resealed = file;
  reseal(resealed);
  ASSERT_EQ(file, resealed) << "the test's CRC-32 differs from the library's";
  // Payload: kind string, operator state length, then K, M, segment starts, row indices...
  // The first row index lies at the end of the segment starts: point it past K.
  const size_t kind_bytes = 8 + std::strlen("sparse"), state = 24 + kind_bytes + 8;
  const size_t segments = static_cast<size_t>(kM) + 1;  // one block at K = 64
  const size_t first_row = state + 16 + 8 + segments * 8 + 8;
  const int32_t outside = 1000;
  std::memcpy(file.data() + first_row, &outside, 4);
  reseal(file);
  try {
    LinearOperator::deserialize(file.data(), file.size());
    FAIL() << "a row index past K loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row index"), std::string::npos) << e.what();
  }
  // A segment ending past the kept weights, the last one back at their count (found by
  // fuzz_operator_file: rows were read out of bounds before the last start was checked).
  std::vector<uint8_t> overlong = sparse.serialize();
  const int64_t past = 1 << 20;
  std::memcpy(overlong.data() + state + 16 + 8 + 8, &past, 8);
  reseal(overlong);
  try {
    LinearOperator::deserialize(overlong.data(), overlong.size());
    FAIL() << "a segment past the kept weights loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is not within the"), std::string::npos) << e.what();
  }
  // An unknown kind.
  std::vector<uint8_t> foreign = sparse.serialize();
  foreign[24 + 8] = 'x';
  reseal(foreign);
  EXPECT_THROW(LinearOperator::deserialize(foreign.data(), foreign.size()), Error);
}

TEST(OperatorFileContents, LoraKeepsItsAdaptersIdsAndMerges) {
  const std::vector<float> w = testing::uniform(kK, kM, -1.f, 1.f, 21), x = testing::uniform(kN, kK, -1.f, 1.f, 22);
  LoraLinear lora(std::make_shared<DenseLinear>(MatrixView::row_major(w.data(), kK, kM)));
  std::vector<std::vector<float>> factors;
  for (int i = 0; i < 3; ++i) {
    factors.push_back(testing::uniform(kK, 2 + i, -0.5f, 0.5f, static_cast<uint64_t>(30 + i)));
    factors.push_back(testing::uniform(2 + i, kM, -0.5f, 0.5f, static_cast<uint64_t>(40 + i)));
    lora.add_adapter("a" + std::to_string(i), MatrixView::row_major(factors[2 * i].data(), kK, 2 + i),
                     MatrixView::row_major(factors[2 * i + 1].data(), 2 + i, kM), 1.5f + static_cast<float>(i));
  }
  lora.remove_adapter("a0");  // id 0 becomes a hole
  lora.merge("a2");
  std::vector<int32_t> ids(static_cast<size_t>(kN));
  for (int64_t i = 0; i < kN; ++i) ids[i] = i % 3 == 0 ? LoraLinear::kNoAdapter : static_cast<int32_t>(1 + i % 2);
  const std::vector<uint8_t> bytes = lora.serialize();
  const std::unique_ptr<LinearOperator> back = LinearOperator::deserialize(bytes.data(), bytes.size());
  const auto* loaded = dynamic_cast<const LoraLinear*>(back.get());
  ASSERT_NE(nullptr, loaded);
  EXPECT_EQ(1, loaded->adapter_id("a1"));
  EXPECT_EQ(2, loaded->adapter_id("a2"));
  EXPECT_TRUE(loaded->merged("a2"));
  EXPECT_FALSE(loaded->merged("a1"));
  EXPECT_THROW(loaded->adapter_id("a0"), Error);
  const MatrixView xv = MatrixView::row_major(x.data(), kN, kK);
  EXPECT_EQ(lora.forward(xv, ids.data()).values, loaded->forward(xv, ids.data()).values);
  EXPECT_EQ(bytes, loaded->serialize());
}

// Operator file version 3 exists for smoothed int8 payloads alone: every other operator keeps
// writing version 2, which 0.3 reads, and a smoothed one is refused by version, not as corrupt,
// by a reader that stops at version 2.
TEST(OperatorFileContents, OnlySmoothedInt8WritesVersion3) {
  for (const auto& [name, make] : makers()) {
    const std::vector<uint8_t> file = make()->serialize();
    uint32_t version = 0;
    std::memcpy(&version, file.data() + 8, 4);
    EXPECT_EQ(name.find("smoothed") != std::string::npos ? 3u : 2u, version) << name;
  }
}

// One file format since 0.3: a saved MADDNESS model is an operator file of kind "maddness", so
// either loader reads what the other wrote, and both predict the same bit for bit. A file of
// another kind is still no MADDNESS model.
TEST(OperatorFileContents, ModelsAndMaddnessOperatorsShareOneFormat) {
  const std::vector<float> a = testing::low_rank_rows(300, 32, 4, 0.1f, 2), b = testing::uniform(32, 5, -1.f, 1.f, 3);
  MaddnessConfig config;
  config.ncodebooks = 4;
  Maddness model(config);
  model.fit(MatrixView::row_major(a.data(), 300, 32), MatrixView::row_major(b.data(), 32, 5));
  const Matrix expected = model.matmul(MatrixView::row_major(a.data(), 300, 32));
  const std::vector<uint8_t> model_file = model.serialize();
  const std::unique_ptr<LinearOperator> as_operator = LinearOperator::deserialize(model_file.data(), model_file.size());
  ASSERT_EQ("maddness", as_operator->kind());
  const Matrix from_operator = as_operator->forward(MatrixView::row_major(a.data(), 300, 32));
  EXPECT_EQ(0, std::memcmp(expected.data(), from_operator.data(), expected.values.size() * sizeof(float)));
  const MaddnessLinear op(std::move(model));
  const std::vector<uint8_t> op_file = op.serialize();
  EXPECT_TRUE(Maddness::is_saved_model(model_file.data(), model_file.size()));
  EXPECT_FALSE(Maddness::is_saved_model(op_file.data(), op_file.size()));
  const Matrix from_model = Maddness::deserialize(op_file.data(), op_file.size()).matmul(MatrixView::row_major(a.data(), 300, 32));
  EXPECT_EQ(0, std::memcmp(expected.data(), from_model.data(), expected.values.size() * sizeof(float)));
  const std::vector<float> w = testing::uniform(32, 5, -1.f, 1.f, 4);
  const std::vector<uint8_t> dense_file = DenseLinear(MatrixView::row_major(w.data(), 32, 5)).serialize();
  EXPECT_THROW(Maddness::deserialize(dense_file.data(), dense_file.size()), Error);
  EXPECT_THROW(LinearOperator::load("/nonexistent/dir/op.lutmul"), Error);
  EXPECT_THROW(MaddnessLinear(Maddness(config)), Error);  // not fitted
}

}  // namespace
}  // namespace lutmul
