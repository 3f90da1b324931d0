// The bad-input matrix (docs/bad_input.md, issue 14): one test for each C++ cell that no other
// test covered. Each test names the cells it backs.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "lutmul/io/peft_adapter.h"
#include "lutmul/io/safetensors.h"
#include "lutmul/lutmul.h"
#include "lutmul/runtime.h"
#include "runtime/tiny_bert.h"
#include "safetensors_writer.h"
#include "test_util.h"
#include "expect_error.h"

namespace lutmul::testing {
namespace {

namespace fs = std::filesystem;
using runtime::Encoder;
using runtime::EncoderConfig;


// A fresh folder under the temporary directory, removed when the process exits.
fs::path fresh_folder(const std::string& name) {
  const fs::path folder = fs::temp_directory_path() / ("lutmul_bad_input_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(folder);
  fs::create_directories(folder);
  remove_at_exit(folder);
  return folder;
}

std::vector<uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> names_in(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Files this process writes may not grow past `bytes` while it lives: a write past the limit
// fails with EFBIG, as one on a full disk fails with ENOSPC (SIGXFSZ ignored meanwhile).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &old_);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = old_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  void (*old_handler_)(int) = nullptr;
};

// ---- operators ----

// Cells: "empty W (K = 0)" for the kinds other than int8 and 2:4.
TEST(BadInput, EmptyWeightsAreAnErrorForEveryKind) {
  const std::vector<float> none;
  const MatrixView empty_rows = MatrixView::row_major(none.data(), 0, 4);
  for (const std::string kind : {"dense", "bf16", "sparse", "channel_pruned", "low_rank", "int8"}) {
    const BuildParams params = kind == "low_rank" ? BuildParams{{"rank", "2"}} : BuildParams{};
    expect_error([&] { build(kind, empty_rows, nullptr, nullptr, params); }, {"W must not be empty", "0 x 4"});
    // M = 0 is refused by the view check first, whose message is odd: "W: leading dimension 0
    // is smaller than 0 for a row-major 8 x 0 matrix" (a packed view of no columns has ld 0).
    std::vector<float> column(8, 1.f);
    expect_error([&] { build(kind, MatrixView::row_major(column.data(), 8, 0), nullptr, nullptr, params); },
                 {"W", "8 x 0"});
  }
}

// Cell: "null X data, null Y".
TEST(BadInput, NullXOrYIsAnError) {
  const std::vector<float> w = uniform(8, 4, -1, 1, 1), x = uniform(3, 8, -1, 1, 2);
  const MatrixView W = MatrixView::row_major(w.data(), 8, 4);
  std::vector<float> y(3 * 4);
  for (const std::string kind : {"dense", "bf16", "int8", "sparse"}) {
    const auto op = build(kind, W);
    expect_error([&] { op->forward(MatrixView::row_major(nullptr, 3, 8), y.data(), 4); }, {"X", "null data", "3 x 8"});
    expect_error([&] { op->forward(MatrixView::row_major(x.data(), 3, 8), nullptr, 4); }, {"Y is null"});
    op->forward(MatrixView::row_major(x.data(), 3, 8), y.data(), 4);  // the same call with Y is fine
  }
}

// Cells: operator files' "null data"; `save` into a missing folder, or onto a folder.
TEST(BadInput, OperatorFilesNullDataAndFailedSaves) {
  expect_error([] { LinearOperator::deserialize(nullptr, 64); }, {"null data"});  // was a segfault
  expect_error([] { LinearOperator::deserialize(nullptr, 4); }, {"null data"});
  expect_error([] { Maddness::deserialize(nullptr, 64); }, {"null data"});
  const std::vector<float> w = uniform(16, 8, -1, 1, 3);
  const auto op = build("dense", MatrixView::row_major(w.data(), 16, 8));
  const fs::path folder = fresh_folder("operator_save");
  expect_error([&] { op->save((folder / "missing" / "op.lutmul").string()); }, {"cannot create a temporary file beside"});
  fs::create_directories(folder / "taken");
  expect_error([&] { op->save((folder / "taken").string()); }, {"renaming onto"});
  EXPECT_TRUE(fs::is_directory(folder / "taken"));
  EXPECT_TRUE(fs::is_empty(folder / "taken"));
  EXPECT_EQ(names_in(folder), std::vector<std::string>{"taken"});  // no temporary file left behind
}

// Cell: "full disk", simulated by a file size limit: the write fails, the old file is left as
// it was and no temporary file stays.
TEST(BadInput, SavesOntoAFullDiskKeepTheOldFile) {
  const fs::path folder = fresh_folder("full_disk");
  const std::string target = (folder / "target").string();
  write_text(target, "the old file");
  const std::vector<float> w = uniform(256, 64, -1, 1, 4);
  const auto op = build("dense", MatrixView::row_major(w.data(), 256, 64));
  const TinyBert bert = write_tiny_bert(TinyBertSpec{}, "bad_input_full_disk");
  const auto encoder = Encoder::load(bert.folder);
  {
    FileSizeLimit limit(4096);
    expect_error([&] { op->save(target); }, {"writing", "failed"});
    expect_error([&] { encoder->save(target); }, {"writing", "failed"});
  }
  const std::vector<uint8_t> old = read_bytes(target);
  EXPECT_EQ(std::string(old.begin(), old.end()), "the old file");
  EXPECT_EQ(names_in(folder), std::vector<std::string>{"target"});
}

// ---- safetensors ----

// Cells: "foreign file (a lutmul operator file)"; "flipped byte in the data" (GAP 3: the
// value changes and no error is raised, because safetensors has no checksum).
TEST(BadInput, SafetensorsForeignFilesAndFlippedDataBytes) {
  const fs::path folder = fresh_folder("safetensors");
  const std::vector<float> w = uniform(16, 8, -1, 1, 5);
  build("dense", MatrixView::row_major(w.data(), 16, 8))->save((folder / "op.lutmul").string());
  expect_error([&] { SafetensorsFile::read((folder / "op.lutmul").string()); },
               {"safetensors header length", "larger than the 100000000 bytes allowed"});

  const std::vector<float> values = uniform(4, 4, -1, 1, 6);
  std::vector<uint8_t> bytes = safetensors_file({{"t", "F32", {4, 4}, float_bytes(values)}});
  bytes[bytes.size() - 4 * 6 + 1] ^= 0x40;  // a mantissa bit of value 10 of 16
  const std::vector<float> read = SafetensorsFile::parse(bytes).to_float("t");  // no error
  int changed = 0;
  for (size_t i = 0; i < values.size(); ++i) changed += read[i] != values[i];
  EXPECT_EQ(changed, 1);
  EXPECT_NE(read[10], values[10]);
}

// ---- PEFT adapters ----

// Cells: "NaN in lora_A"; "missing adapter_model.safetensors, or a directory in its place".
TEST(BadInput, PeftNaNsAndMissingWeights) {
  const int64_t k = 6, m = 5, r = 2;
  std::vector<float> a = uniform(r, k, -1, 1, 7);
  const std::vector<float> b = uniform(m, r, -1, 1, 8);
  a[0] = std::numeric_limits<float>::quiet_NaN();
  const fs::path folder = fresh_folder("peft");
  write_text(folder / "adapter_config.json", R"({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]})");
  write_bytes((folder / "adapter_model.safetensors").string(),
              safetensors_file({{"m.q_proj.lora_A.weight", "F32", {r, k}, float_bytes(a)},
                                {"m.q_proj.lora_B.weight", "F32", {m, r}, float_bytes(b)}}));
  expect_error([&] { read_peft_adapter(folder.string()); }, {"q_proj.lora_A.weight", "non-finite value", "flat index 0"});
  fs::remove(folder / "adapter_model.safetensors");
  expect_error([&] { read_peft_adapter(folder.string()); }, {"adapter_model.safetensors", "not a readable file"});
  fs::create_directories(folder / "adapter_model.safetensors");
  expect_error([&] { read_peft_adapter(folder.string()); }, {"adapter_model.safetensors", "not a readable file"});
}

// ---- model folders and config.json ----

// Cells: "missing config.json"; "config.json a list; hidden_size "384"; vocab_size 0;
// num_hidden_layers 0; layer_norm_eps -1"; "architectures: [GPT2LMHeadModel]" is accepted.
TEST(BadInput, ConfigFieldsOfTheWrongTypeOrRange) {
  const TinyBert bert = write_tiny_bert(TinyBertSpec{}, "bad_input_config");
  fs::remove(fs::path(bert.folder) / "config.json");
  expect_error([&] { Encoder::load(bert.folder); }, {"cannot open", "config.json"});

  const std::string good = tiny_bert_config_json(TinyBertSpec{});
  const auto replaced = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return text.replace(at, from.size(), to);
  };
  expect_error([&] { EncoderConfig::parse("[1, 2]"); }, {"expected a JSON object"});
  expect_error([&] { EncoderConfig::parse(replaced("\"hidden_size\": 48", "\"hidden_size\": \"384\"")); },
               {"'hidden_size' must be a positive integer", "\"384\""});
  expect_error([&] { EncoderConfig::parse(replaced("\"vocab_size\": 97", "\"vocab_size\": 0")); }, {"vocab_size"});
  expect_error([&] { EncoderConfig::parse(replaced("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 0")); },
               {"num_hidden_layers"});
  expect_error([&] { EncoderConfig::parse(replaced("\"layer_norm_eps\": " + exact_text(1e-12), "\"layer_norm_eps\": -1")); },
               {"layer_norm_eps"});
  const EncoderConfig gpt2 = EncoderConfig::parse(replaced("\"BertModel\"", "\"GPT2LMHeadModel\""));
  EXPECT_EQ(gpt2.hidden_size, 48);
}

// ---- encoder files ----

// Cells: "a text file; an empty file; a file with only the magic bytes"; "save into a missing
// folder".
TEST(BadInput, ForeignEncoderFilesAndSavesIntoAMissingFolder) {
  const fs::path folder = fresh_folder("encoder_file");
  write_text(folder / "text", "hello");
  write_text(folder / "long_text", "a line of text that is longer than any header, and not an encoder at all\n");
  write_text(folder / "empty", "");
  write_text(folder / "magic", "LUTMULEN");
  for (const char* name : {"text", "empty", "magic"})
    expect_error([&] { Encoder::load((folder / name).string()); }, {"not a lutmul encoder file", "shorter than the header"});
  expect_error([&] { Encoder::load((folder / "long_text").string()); }, {"not a lutmul encoder file", "bad magic bytes"});
  const TinyBert bert = write_tiny_bert(TinyBertSpec{}, "bad_input_encoder_save");
  const auto encoder = Encoder::load(bert.folder);
  expect_error([&] { encoder->save((folder / "missing" / "model.lutmul").string()); },
               {"cannot create a temporary file beside"});
  EXPECT_FALSE(fs::exists(folder / "missing"));
}

// Cell: "embed_from_block: NaN or Inf in the hidden states; a length of 0; block -1".
TEST(BadInput, EmbedFromBlockChecksItsInput) {
  const TinyBert bert = write_tiny_bert(TinyBertSpec{}, "bad_input_from_block");
  const auto encoder = Encoder::load(bert.folder);
  const std::vector<int32_t> ids = {1, 5, 9, 2, 3, 4, 7};
  const std::vector<int64_t> lengths = {3, 4};
  const int64_t H = encoder->hidden_size();
  std::vector<float> hidden(ids.size() * static_cast<size_t>(H)), out(2 * static_cast<size_t>(H));
  encoder->layer_inputs(ids.data(), lengths.data(), 2, 1, "query", hidden.data());
  encoder->embed_from_block(1, hidden.data(), lengths.data(), 2, out.data());  // the good call
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> damaged = hidden;
    damaged[3] = bad;
    expect_error([&] { encoder->embed_from_block(1, damaged.data(), lengths.data(), 2, out.data()); },
                 {"non-finite value", "row 0, column 3"});
  }
  expect_error([&] { encoder->embed_from_block(1, hidden.data(), std::vector<int64_t>{3, 0}.data(), 2, out.data()); },
               {"sequence 1 has length 0"});
  expect_error([&] { encoder->embed_from_block(-1, hidden.data(), lengths.data(), 2, out.data()); },
               {"block -1 does not exist"});
}

// Cell: "hidden_through_blocks: blocks not a range of the encoder's; NaN in the hidden states;
// a length of 0".
TEST(BadInput, HiddenThroughBlocksChecksItsInput) {
  const TinyBert bert = write_tiny_bert(TinyBertSpec{}, "bad_input_through_blocks");
  const auto encoder = Encoder::load(bert.folder);
  const std::vector<int32_t> ids = {1, 5, 9, 2, 3, 4, 7};
  const std::vector<int64_t> lengths = {3, 4};
  const int64_t H = encoder->hidden_size();
  const int blocks = static_cast<int>(bert.spec.layers);
  std::vector<float> hidden(ids.size() * static_cast<size_t>(H)), out(hidden.size());
  encoder->layer_inputs(ids.data(), lengths.data(), 2, 0, "query", hidden.data());
  encoder->hidden_through_blocks(0, blocks, hidden.data(), lengths.data(), 2, out.data());  // the good call
  for (const auto& [first, last] : std::vector<std::pair<int, int>>{{-1, 1}, {1, 1}, {2, 1}, {0, blocks + 1}}) {
    expect_error([&] { encoder->hidden_through_blocks(first, last, hidden.data(), lengths.data(), 2, out.data()); },
                 {"are not a range of this encoder's", std::to_string(blocks) + " blocks"});
  }
  std::vector<float> damaged = hidden;
  damaged[3] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { encoder->hidden_through_blocks(0, 1, damaged.data(), lengths.data(), 2, out.data()); },
               {"non-finite value", "row 0, column 3"});
  expect_error([&] { encoder->hidden_through_blocks(0, 1, hidden.data(), std::vector<int64_t>{3, 0}.data(), 2,
                                                    out.data()); },
               {"sequence 1 has length 0"});
  expect_error([&] { encoder->hidden_through_blocks(0, 1, nullptr, lengths.data(), 2, out.data()); },
               {"hidden or out is null"});
}

}  // namespace
}  // namespace lutmul::testing
