// Model files: round trips, and every kind of damaged file rejected with lutmul::Error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "../core/isa_sweep.h"
#include "lutmul/lutmul.h"
#include "test_util.h"

namespace lutmul {
namespace {

namespace fs = std::filesystem;

// Run at every ISA level (isa_sweep.h): save, load and predict with that level's kernels,
// 16-leaf trees (averaged sums) and 64-leaf trees (format version 3).
class Saved : public testing::LevelTest<testing::Family::maddness, std::tuple<Isa, int>> {
 protected:
  static int leaves() { return std::get<1>(GetParam()); }

  void SetUp() override {
    LevelTest::SetUp();
    if (IsSkipped()) return;
    // The test name holds the level ("EveryTruncationIsRejected/avx2"): one folder each.
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = fs::temp_directory_path() / ("lutmul_test_" + std::to_string(::getpid()) + "_" + name);
    fs::create_directories(dir_);
    train_ = testing::low_rank_rows(600, 40, 5, 0.1f, 1);
    weights_ = testing::uniform(40, 7, -1.f, 1.f, 2);
    const std::vector<float> bias = {1, 2, 3, 4, 5, 6, 7};
    MaddnessConfig config;
    config.ncodebooks = 5;
    config.leaves = leaves();
    config.accumulation = leaves() == 16 ? Accumulation::averaged : Accumulation::exact;
    model_ = Maddness(config);
    model_.fit(MatrixView::row_major(train_.data(), 600, 40), MatrixView::row_major(weights_.data(), 40, 7), bias.data());
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
    LevelTest::TearDown();
  }

  std::vector<uint8_t> read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  void write(const fs::path& p, const std::vector<uint8_t>& bytes) {
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }

  fs::path dir_;
  std::vector<float> train_, weights_;
  Maddness model_;
};

TEST_P(Saved, SaveLoadReloadGiveIdenticalOutputs) {
  const fs::path path = dir_ / "model.lutmul";
  model_.save(path.string());
  const Maddness loaded = Maddness::load(path.string());
  loaded.save((dir_ / "again.lutmul").string());
  const Maddness reloaded = Maddness::load((dir_ / "again.lutmul").string());
  const MatrixView a = MatrixView::row_major(train_.data(), 600, 40);
  const Matrix y = model_.matmul(a);
  EXPECT_EQ(y.values, loaded.matmul(a).values);
  EXPECT_EQ(y.values, reloaded.matmul(a).values);
  EXPECT_EQ(read(path), read(dir_ / "again.lutmul"));
  EXPECT_EQ(model_.config().accumulation, loaded.config().accumulation);
  EXPECT_EQ(leaves(), loaded.leaves());
  EXPECT_EQ(model_.chosen_ridge_lambda(), loaded.chosen_ridge_lambda());
  // No temporary files are left behind.
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir_)) files += entry.is_regular_file() ? 1 : 0;
  EXPECT_EQ(2, files);
}

TEST_P(Saved, EncoderWithoutWeightsRoundTrips) {
  MaddnessConfig config;
  config.ncodebooks = 3;
  config.leaves = leaves();
  Maddness encoder_only(config);
  encoder_only.fit_encoder(MatrixView::row_major(train_.data(), 600, 40));
  const std::vector<uint8_t> bytes = encoder_only.serialize();
  Maddness back = Maddness::deserialize(bytes.data(), bytes.size());
  EXPECT_FALSE(back.has_weights());
  back.set_weights(MatrixView::row_major(weights_.data(), 40, 7));
  encoder_only.set_weights(MatrixView::row_major(weights_.data(), 40, 7));
  const MatrixView a = MatrixView::row_major(train_.data(), 100, 40);
  EXPECT_EQ(encoder_only.matmul(a).values, back.matmul(a).values);
}

TEST_P(Saved, EveryFlippedByteIsRejected) {
  const std::vector<uint8_t> good = model_.serialize();
  for (size_t i = 0; i < good.size(); i += 1 + good.size() / 300) {
    std::vector<uint8_t> bad = good;
    bad[i] ^= 0x20;
    EXPECT_THROW(Maddness::deserialize(bad.data(), bad.size()), Error) << "byte " << i;
  }
}

TEST_P(Saved, EveryTruncationIsRejected) {
  const std::vector<uint8_t> good = model_.serialize();
  for (size_t len = 0; len < good.size(); len += 1 + good.size() / 300)
    EXPECT_THROW(Maddness::deserialize(good.data(), len), Error) << "length " << len;
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  EXPECT_THROW(Maddness::deserialize(longer.data(), longer.size()), Error);
  const fs::path path = dir_ / "cut.lutmul";
  write(path, std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(good.size() / 2)));
  try {
    Maddness::load(path.string());
    FAIL() << "a truncated file loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.lutmul"), std::string::npos) << e.what();
  }
}

TEST_P(Saved, ForeignAndFutureFilesAreRejected) {
  const fs::path text = dir_ / "notes.txt";
  write(text, std::vector<uint8_t>(100, 'x'));
  EXPECT_THROW(Maddness::load(text.string()), Error);
  EXPECT_THROW(Maddness::load((dir_ / "missing.lutmul").string()), Error);
  std::vector<uint8_t> future = model_.serialize();
  future[8] = 99;  // format version
  try {
    Maddness::deserialize(future.data(), future.size());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("version"), std::string::npos) << e.what();
  }
}

// tests/cpp/data/maddness_v1.lutmul was written by lutmul before format version 2 (one table
// scale for every output) by make_maddness_v1.cpp beside it, with rows and their outputs in
// maddness_v1_rows.f32: the current reader must give those outputs bit for bit.
TEST(FormatVersions, VersionOneFilesLoadAndPredictAsTheyDid) {
  const std::string data = LUTMUL_TEST_DATA_DIR;
  const Maddness model = Maddness::load(data + "/maddness_v1.lutmul");
  const int64_t rows = 70, d = 24, m = 5;
  ASSERT_EQ(d, model.input_dim());
  ASSERT_EQ(m, model.output_dim());
  std::ifstream in(data + "/maddness_v1_rows.f32", std::ios::binary);
  std::vector<float> x(static_cast<size_t>(rows * d)), expected(static_cast<size_t>(rows * m));
  in.read(reinterpret_cast<char*>(x.data()), static_cast<std::streamsize>(x.size() * sizeof(float)));
  in.read(reinterpret_cast<char*>(expected.data()), static_cast<std::streamsize>(expected.size() * sizeof(float)));
  ASSERT_TRUE(in) << "maddness_v1_rows.f32 is short";
  for (int64_t j = 1; j < m; ++j) EXPECT_EQ(model.table_scale(0), model.table_scale(j)) << "version 1 had one scale";
  const Matrix y = model.matmul(MatrixView::row_major(x.data(), rows, d));
  ASSERT_EQ(0, std::memcmp(expected.data(), y.values.data(), expected.size() * sizeof(float)));
  // Saved again, it is a version 2 file that predicts the same.
  const std::vector<uint8_t> bytes = model.serialize();
  EXPECT_EQ(2, bytes[8]);
  const Matrix again = Maddness::deserialize(bytes.data(), bytes.size()).matmul(MatrixView::row_major(x.data(), rows, d));
  EXPECT_EQ(0, std::memcmp(expected.data(), again.values.data(), expected.size() * sizeof(float)));
}

TEST_P(Saved, FailedSaveLeavesTheOldFileIntact) {
  const fs::path path = dir_ / "model.lutmul";
  model_.save(path.string());
  const std::vector<uint8_t> before = read(path);
  EXPECT_THROW(model_.save((dir_ / "no_such_dir" / "model.lutmul").string()), Error);
  EXPECT_THROW(Maddness().save(path.string()), Error);  // an unfitted model
  EXPECT_EQ(before, read(path));
}

TEST_P(Saved, SixteenLeafFilesStayVersionTwo) {
  // Releases that read versions 1 and 2 still read every 16-leaf file this one writes.
  const std::vector<uint8_t> payload = model_.payload();  // starts with the model format version
  uint32_t version = 0;
  std::memcpy(&version, payload.data(), sizeof version);
  EXPECT_EQ(leaves() == 16 ? 2u : 3u, version);
  const std::vector<uint8_t> bytes = model_.serialize();
  const Maddness back = Maddness::deserialize(bytes.data(), bytes.size());
  EXPECT_EQ(leaves(), back.leaves());
  EXPECT_EQ(model_.prototypes(), back.prototypes());
  EXPECT_EQ(model_.quantized_tables(), back.quantized_tables());
  EXPECT_EQ(0u, reinterpret_cast<uintptr_t>(back.quantized_tables().data()) % 64) << "a loaded model's tables too";
  const int last = model_.tree_depth() - 1;
  for (int c = 0; c < model_.ncodebooks(); ++c)
    for (int node = 0; node < (1 << last); ++node)
      ASSERT_EQ(model_.threshold(c, last, node), back.threshold(c, last, node));
}

INSTANTIATE_TEST_SUITE_P(Isa, Saved, ::testing::ValuesIn(testing::cartesian(testing::every_level(), std::vector<int>{16, 64})),
                         [](const ::testing::TestParamInfo<std::tuple<Isa, int>>& param_info) {
                           return isa_name(std::get<0>(param_info.param)) + "_K" +
                                  std::to_string(std::get<1>(param_info.param));
                         });

}  // namespace
}  // namespace lutmul
