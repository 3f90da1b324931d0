// The encoder file (Encoder::save, Encoder::load on a file) and layer_inputs, on small random
// BERTs written by the test: a saved encoder with mixed operator kinds embeds bit for bit the
// same, damaged files are rejected, and the rows layer_inputs returns are exactly those the
// layer reads inside the forward.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>

#include "lutmul/lutmul.h"
#include "lutmul/runtime.h"
#include "expect_error.h"
#include "runtime/tiny_bert.h"

namespace lutmul::testing {
namespace {

using runtime::Encoder;
namespace fs = std::filesystem;

using Batch = RaggedBatch;

std::vector<float> embed(const Encoder& encoder, const Batch& b) {
  std::vector<float> out(static_cast<size_t>(b.sequences() * encoder.hidden_size()));
  encoder.embed(b.ids.data(), b.lengths.data(), b.sequences(), out.data());
  return out;
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("lutmul_encoder_file_" + name + "_" + std::to_string(::getpid()))).string();
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// An encoder whose layers are of several kinds: int8, bf16, low-rank and dense.
std::shared_ptr<Encoder> mixed_encoder(const TinyBert& bert) {
  const auto encoder = Encoder::load(bert.folder);
  const TinyBertSpec& s = bert.spec;
  const auto weight = [&](const std::string& name) { return bert.tensors.at(name + ".weight").data(); };
  const auto bias = [&](const std::string& name) { return bert.tensors.at(name + ".bias").data(); };
  const std::string key0 = "encoder.layer.0.attention.self.key", value1 = "encoder.layer.1.attention.self.value";
  const std::string ffn1 = "encoder.layer.1.intermediate.dense";
  auto int8 = std::make_shared<Int8Linear>(MatrixView::col_major(weight(key0), s.hidden, s.hidden), bias(key0));
  auto bf16 = std::make_shared<Bf16Linear>(MatrixView::col_major(weight(value1), s.hidden, s.hidden), bias(value1));
  LowRankConfig rank16;
  rank16.rank = 16;
  auto lowrank = std::make_shared<LowRankLinear>(MatrixView::col_major(weight(ffn1), s.hidden, s.intermediate), bias(ffn1), rank16);
  return encoder->with_linear(0, "key", int8)->with_linear(1, "value", bf16)->with_linear(1, "ffn_in", lowrank);
}

TEST(EncoderFile, SavedAndLoadedEmbedsBitForBitWithEveryKindAndTheMetadata) {
  const TinyBert bert = write_tiny_bert(TinyBertSpec{}, "file_roundtrip");
  const auto encoder = mixed_encoder(bert);
  const std::string path = temp_path("roundtrip");
  const std::map<std::string, std::string> metadata = {{"plan", "{\"layers\": []}"}, {"tokenizer.json", std::string(5000, 'x')}};
  encoder->save(path, metadata);
  const auto loaded = Encoder::load(path);
  const Batch b = random_batch({7, 1, 23, 12}, bert.spec.vocab, 3);
  EXPECT_EQ(embed(*loaded, b), embed(*encoder, b));
  EXPECT_EQ(loaded->metadata(), metadata);
  EXPECT_TRUE(encoder->metadata().empty());
  EXPECT_EQ(loaded->linear(0, "key")->kind(), "int8");
  EXPECT_EQ(loaded->linear(1, "value")->kind(), "bf16");
  EXPECT_EQ(loaded->linear(1, "ffn_in")->kind(), "low_rank");
  EXPECT_EQ(loaded->bytes(), encoder->bytes());
  EXPECT_EQ(loaded->pooling(), encoder->pooling());
  EXPECT_EQ(loaded->max_sequence_length(), encoder->max_sequence_length());
  EXPECT_EQ(loaded->config().to_json(), encoder->config().to_json());
  // A derived encoder keeps the metadata; saving again gives the same bytes.
  EXPECT_EQ(loaded->with_linear(0, "query", loaded->linear(0, "query"))->metadata(), metadata);
  const std::string again = temp_path("roundtrip_again");
  loaded->save(again, metadata);
  EXPECT_EQ(read_bytes(again), read_bytes(path));
  // A file keeps its operators: a precision is for folders.
  EXPECT_THROW(Encoder::load(path, runtime::Precision::bf16), Error);
  fs::remove(path);
  fs::remove(again);
}

TEST(EncoderFile, DamagedTruncatedAndForeignFilesAreRejected) {
  const TinyBert bert = write_tiny_bert(TinyBertSpec{}, "file_damage");
  const auto encoder = mixed_encoder(bert);
  const std::string path = temp_path("damage"), bad = temp_path("damage_bad");
  encoder->save(path, {{"plan", "{}"}});
  const std::vector<uint8_t> bytes = read_bytes(path);
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 60; ++trial) {
    std::vector<uint8_t> damaged = bytes;
    damaged[rng() % damaged.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    write_bytes(bad, damaged);
    EXPECT_THROW(Encoder::load(bad), Error) << "flipped byte, trial " << trial;
    write_bytes(bad, std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(rng() % bytes.size())));
    EXPECT_THROW(Encoder::load(bad), Error) << "truncated, trial " << trial;
  }
  // An operator file is not an encoder file, and the message says what was expected.
  encoder->linear(0, "query")->save(bad);
  try {
    Encoder::load(bad);
    ADD_FAILURE() << "an operator file loaded as an encoder";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("encoder file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Encoder::load(temp_path("missing")), Error);
  fs::remove(bad);

  // A save that cannot complete leaves the old file as it was.
  const std::string folder = temp_path("damage_folder");
  fs::create_directories(folder);
  EXPECT_THROW(encoder->save(folder), Error);
  EXPECT_THROW(encoder->save(path, {{"", "no name"}}), Error);
  EXPECT_EQ(read_bytes(path), bytes);
  fs::remove_all(folder);
  fs::remove(path);
}

// Delegates to the layer it replaces and keeps a copy of every X it is given.
class RecordingLinear : public LinearOperator {
 public:
  explicit RecordingLinear(std::shared_ptr<const LinearOperator> inner) : inner_(std::move(inner)) {}
  std::string kind() const override { return "recording"; }
  int64_t input_dim() const override { return inner_->input_dim(); }
  int64_t output_dim() const override { return inner_->output_dim(); }
  int64_t bytes() const override { return inner_->bytes(); }
  double multiply_adds_per_row() const override { return inner_->multiply_adds_per_row(); }
  void forward(const MatrixView& X, float* Y, int64_t ldy) const override {
    std::lock_guard<std::mutex> lock(mutex_);
    seen_.assign(static_cast<size_t>(X.rows * X.cols), 0.f);
    for (int64_t i = 0; i < X.rows; ++i)
      for (int64_t j = 0; j < X.cols; ++j) seen_[static_cast<size_t>(i * X.cols + j)] = X.at(i, j);
    inner_->forward(X, Y, ldy);
  }
  std::vector<float> seen() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return seen_;
  }

 private:
  std::shared_ptr<const LinearOperator> inner_;
  mutable std::mutex mutex_;
  mutable std::vector<float> seen_;
};

TEST(EncoderFile, LayerInputsAreTheRowsEachLayerReadsAndResumeTheForward) {
  const TinyBert bert = write_tiny_bert(TinyBertSpec{}, "layer_inputs");
  const auto encoder = mixed_encoder(bert);  // compressed layers upstream shape the inputs
  const Batch b = random_batch({5, 17, 9}, bert.spec.vocab, 11);
  for (const runtime::LinearSlot& slot : encoder->linear_layers()) {
    auto spy = std::make_shared<RecordingLinear>(encoder->linear(slot.block, slot.name));
    const auto spied = encoder->with_linear(slot.block, slot.name, spy);
    embed(*spied, b);
    std::vector<float> rows(static_cast<size_t>(b.tokens() * spy->input_dim()));
    encoder->layer_inputs(b.ids.data(), b.lengths.data(), b.sequences(), slot.block, slot.name, rows.data());
    EXPECT_EQ(rows, spy->seen()) << "block " << slot.block << " " << slot.name;
  }
  // Resuming from a block's input gives the embeddings of the whole forward, bit for bit.
  const std::vector<float> whole = embed(*encoder, b);
  for (int block = 0; block < bert.spec.layers; ++block) {
    std::vector<float> hidden(static_cast<size_t>(b.tokens() * bert.spec.hidden)), resumed(whole.size());
    encoder->layer_inputs(b.ids.data(), b.lengths.data(), b.sequences(), block, "query", hidden.data());
    encoder->embed_from_block(block, hidden.data(), b.lengths.data(), b.sequences(), resumed.data());
    EXPECT_EQ(resumed, whole) << "from block " << block;
  }
  std::vector<float> rows(static_cast<size_t>(b.tokens() * bert.spec.hidden));
  EXPECT_THROW(encoder->embed_from_block(2, rows.data(), b.lengths.data(), b.sequences(), rows.data()), Error);
  EXPECT_THROW(encoder->layer_inputs(b.ids.data(), b.lengths.data(), b.sequences(), 2, "query", rows.data()), Error);
  EXPECT_THROW(encoder->layer_inputs(b.ids.data(), b.lengths.data(), b.sequences(), 0, "dense", rows.data()), Error);
  EXPECT_THROW(encoder->layer_inputs(b.ids.data(), b.lengths.data(), b.sequences(), 0, "query", nullptr), Error);
}

// A pipeline's stages each run a group of blocks; chained, they are the whole forward, bit
// for bit, and each stage's output is what the next block reads.
TEST(EncoderFile, BlockGroupsChainedAreTheWholeForward) {
  const TinyBert bert = write_tiny_bert(TinyBertSpec{}, "block_groups");
  const auto encoder = mixed_encoder(bert);
  const Batch b = random_batch({5, 17, 9}, bert.spec.vocab, 12);
  const size_t rows = static_cast<size_t>(b.tokens() * bert.spec.hidden);
  std::vector<float> last(rows);
  encoder->hidden_states(b.ids.data(), b.lengths.data(), b.sequences(), last.data());
  std::vector<float> entering(rows);
  encoder->layer_inputs(b.ids.data(), b.lengths.data(), b.sequences(), 0, "query", entering.data());
  const int blocks = static_cast<int>(bert.spec.layers);
  for (int split = 1; split < blocks; ++split) {
    std::vector<float> middle(rows), end(rows), expected(rows);
    encoder->hidden_through_blocks(0, split, entering.data(), b.lengths.data(), b.sequences(), middle.data());
    encoder->layer_inputs(b.ids.data(), b.lengths.data(), b.sequences(), split, "query", expected.data());
    EXPECT_EQ(middle, expected) << "blocks 0.." << split;
    encoder->hidden_through_blocks(split, blocks, middle.data(), b.lengths.data(), b.sequences(), end.data());
    EXPECT_EQ(end, last) << "blocks " << split << ".." << blocks;
  }
  std::vector<float> whole(rows);
  encoder->hidden_through_blocks(0, blocks, entering.data(), b.lengths.data(), b.sequences(), whole.data());
  EXPECT_EQ(whole, last);
}

// A pipeline stage holds only its blocks: two stages chained are the whole forward, bit for
// bit; each refuses what needs weights it dropped; together they hold the whole model once.
TEST(EncoderFile, KeptBlocksRunTheirStageAndRefuseTheRest) {
  const TinyBert bert = write_tiny_bert(TinyBertSpec{}, "keep_blocks");
  const auto encoder = mixed_encoder(bert);
  const Batch b = random_batch({5, 17, 9}, bert.spec.vocab, 13);
  const int blocks = static_cast<int>(bert.spec.layers);
  const std::vector<float> whole = embed(*encoder, b);
  const size_t rows = static_cast<size_t>(b.tokens() * bert.spec.hidden);
  for (int split = 1; split < blocks; ++split) {
    const auto head = encoder->keep_blocks(0, split), tail = encoder->keep_blocks(split, blocks);
    EXPECT_EQ(head->held_first(), 0);
    EXPECT_EQ(head->held_last(), split);
    std::vector<float> entering(rows), middle(rows), out(whole.size());
    head->layer_inputs(b.ids.data(), b.lengths.data(), b.sequences(), 0, "query", entering.data());
    head->hidden_through_blocks(0, split, entering.data(), b.lengths.data(), b.sequences(), middle.data());
    tail->embed_from_block(split, middle.data(), b.lengths.data(), b.sequences(), out.data());
    EXPECT_EQ(out, whole) << "split at " << split;
    EXPECT_LT(tail->bytes(), encoder->bytes());
    EXPECT_LT(head->bytes(), encoder->bytes());
    // The embeddings are held once, by the first stage; each block by one stage.
    EXPECT_EQ(head->bytes() + tail->bytes(), encoder->bytes());
    EXPECT_EQ(tail->linear_layers().size(), 6 * static_cast<size_t>(blocks - split));  // six a block
    expect_error([&] { embed(*tail, b); },
                 {"embed needs the embeddings and blocks 0..", "holds blocks " + std::to_string(split)});
    expect_error([&] { embed(*head, b); }, {"holds blocks 0.." + std::to_string(split - 1) + " only"});
    expect_error([&] { tail->linear(0, "query"); }, {"a layer needs blocks 0..0"});
    expect_error([&] { head->embed_from_block(0, entering.data(), b.lengths.data(), b.sequences(), out.data()); },
                 {"embed_from_block needs blocks 0.."});
    expect_error([&] { tail->save(bert.folder + "/stage.lutmul"); },
                 {"save the whole encoder"});
    expect_error([&] { tail->keep_blocks(0, blocks); }, {"keep_blocks needs blocks 0.."});
  }
  expect_error([&] { encoder->keep_blocks(1, 1); }, {"are not a range of this encoder's"});
  expect_error([&] { encoder->keep_blocks(0, blocks + 1); }, {"are not a range of this encoder's"});
  EXPECT_NE(encoder->describe().find("block 0 query"), std::string::npos);
  EXPECT_NE(encoder->keep_blocks(1, blocks)->describe().find("holds blocks 1.."), std::string::npos);
}

}  // namespace
}  // namespace lutmul::testing
