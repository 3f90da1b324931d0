// The limits every reader applies before it allocates (docs/design.md, "Limits"), and the
// inputs the fuzz targets (fuzz/) found, each replayed through the same conversion the
// fuzzer used (fuzz/fuzz_inputs.h). Several of these fail only in the sanitizer build of
// scripts/test.sh (an integer overflow is undefined, not a crash, in a release build).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/file_format.h"
#include "fuzz/fuzz_inputs.h"
#include "io/operator_file.h"
#include "lutmul/lutmul.h"
#include "lutmul/runtime.h"
#include "safetensors_writer.h"

namespace lutmul {
namespace {

namespace fs = std::filesystem;

// Expects `run` to throw lutmul::Error whose message contains `fragment`.
template <class Run>
void expect_error(Run&& run, const std::string& fragment) {
  try {
    run();
    FAIL() << "accepted; expected an error containing \"" << fragment << "\"";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

std::unique_ptr<LinearOperator> load_payload(const std::string& kind, const std::vector<uint8_t>& payload) {
  const std::vector<uint8_t> file = detail::operator_file_bytes(kind, payload);
  return LinearOperator::deserialize(file.data(), file.size());
}

TEST(FileLimits, ArrayEntriesAreCappedAndNeverOverflow) {
  EXPECT_EQ(detail::array_entries("model file", "x", {2, 3, 4}), 24u);
  EXPECT_EQ(detail::array_entries("model file", "x", {uint64_t{1} << 20, uint64_t{1} << 20}), uint64_t{1} << 40);
  // 2^31 · 16 · 2^31 = 2^66 wraps to 0 in 64 bits: caught before the multiply that wraps.
  expect_error([] { detail::array_entries("model file", "prototypes", {uint64_t{1} << 31, 16, uint64_t{1} << 31}); },
               "prototypes would have more than 2^40 entries");
  expect_error([] { detail::array_entries("model file", "x", {uint64_t{1} << 40, 2}); }, "more than 2^40");
}

TEST(FileLimits, AnArrayClaimingMoreThanTheCapIsRejectedBeforeAllocating) {
  // A dense operator of 2^21 × 2^20 weights whose file says so, in a few dozen bytes.
  const int64_t k = int64_t{1} << 21, m = int64_t{1} << 20;
  const std::vector<uint8_t> payload = detail::pack(k, m, static_cast<uint64_t>(k) * static_cast<uint64_t>(m));
  expect_error([&] { load_payload("dense", payload); }, "more than the 2^40 a file may hold");
  // At the cap: the count is allowed, the bytes are not there.
  const std::vector<uint8_t> at_cap = detail::pack(int64_t{1} << 20, int64_t{1} << 20, uint64_t{1} << 40);
  expect_error([&] { load_payload("dense", at_cap); }, "is truncated");
}

TEST(FileLimits, SafetensorsHeaderClaimingTwoToTheFortyElementsIsRejected) {
  const std::string f32 = "\"dtype\":\"F32\"";
  // The offsets agree with the shape (2^40 floats, 4 TiB): the data is 16 bytes.
  expect_error(
      [&] {
        SafetensorsFile::parse(testing::safetensors_file(
            "{\"w\":{" + f32 + ",\"shape\":[1048576,1048576],\"data_offsets\":[0,4398046511104]}}",
            std::vector<uint8_t>(16)));
      },
      "run past the end of the data (16 bytes)");
  // The offsets fit the data, the shape does not.
  expect_error(
      [&] {
        SafetensorsFile::parse(testing::safetensors_file(
            "{\"w\":{" + f32 + ",\"shape\":[1099511627776],\"data_offsets\":[0,16]}}", std::vector<uint8_t>(16)));
      },
      "needs 1099511627776 x 4 bytes");
}

TEST(FileLimits, Sparse24GroupCountIsCheckedBeforeItIsMultiplied) {
  // Found by fuzz_operator_file: 4 · groups overflowed int64 before the range check ran.
  const std::vector<uint8_t> payload = detail::pack(int64_t{2377900603251621890}, int64_t{4});
  expect_error([&] { load_payload("sparse24", payload); }, "2:4 groups = 2377900603251621890");
}

// A LoRA operator whose base is LoRA, `depth` levels down to a 2 × 2 dense base.
std::shared_ptr<const LinearOperator> nested_lora(int depth) {
  const std::vector<float> w = {1.f, 2.f, 3.f, 4.f};
  std::shared_ptr<const LinearOperator> op = std::make_shared<DenseLinear>(MatrixView::row_major(w.data(), 2, 2));
  for (int i = 0; i < depth; ++i) op = std::make_shared<LoraLinear>(op);
  return op;
}

TEST(FileLimits, LoraBasesNestAtMostSixteenDeep) {
  const std::vector<uint8_t> sixteen = nested_lora(16)->serialize();
  EXPECT_EQ(LinearOperator::deserialize(sixteen.data(), sixteen.size())->kind(), "lora");
  const std::vector<uint8_t> seventeen = nested_lora(17)->serialize();
  expect_error([&] { LinearOperator::deserialize(seventeen.data(), seventeen.size()); }, "nested more than 16 deep");
  // The depth count is back to zero after the error: a legal file still loads.
  EXPECT_EQ(LinearOperator::deserialize(sixteen.data(), sixteen.size())->kind(), "lora");
}

struct AdapterFolder {
  fs::path path = fs::temp_directory_path() / ("lutmul_limits_" + std::to_string(getpid()));
  AdapterFolder(const std::string& config, const std::string& module) {
    fs::remove_all(path);
    fs::create_directories(path);
    std::ofstream(path / "adapter_config.json") << config;
    const std::vector<float> a = {1.f, 2.f}, b = {3.f, 4.f};  // r = 1, K = 2, M = 2
    testing::write_bytes((path / "adapter_model.safetensors").string(),
                         testing::safetensors_file({{module + ".lora_A.weight", "F32", {1, 2}, testing::float_bytes(a)},
                                                    {module + ".lora_B.weight", "F32", {2, 1}, testing::float_bytes(b)}}));
  }
  ~AdapterFolder() { fs::remove_all(path); }
};

TEST(FileLimits, PeftModuleNamesAndPatternsAreBounded) {
  {
    const AdapterFolder folder("{\"r\":1,\"lora_alpha\":1}", "layers.0." + std::string(1100, 'q'));
    expect_error([&] { read_peft_adapter(folder.path.string()); }, "longer than the 1024 allowed");
  }
  {
    const AdapterFolder folder("{\"r\":1,\"lora_alpha\":1,\"target_modules\":\"" + std::string(1100, 'q') + "\"}",
                               "layers.0.q_proj");
    expect_error([&] { read_peft_adapter(folder.path.string()); }, "target_modules is 1100 characters long");
  }
  {
    const AdapterFolder folder("{\"r\":1,\"lora_alpha\":1,\"rank_pattern\":{\"" + std::string(1100, 'q') + "\":2}}",
                               "layers.0.q_proj");
    expect_error([&] { read_peft_adapter(folder.path.string()); }, "pattern is");
  }
}

TEST(FileLimits, PeftPatternNumbersAreBounded) {
  // A back-reference of 22 digits overflowed libstdc++'s parser (fuzz_peft_adapter); a large
  // repetition count compiles that many copies. Both are errors; small counts still match.
  const auto config = [](const std::string& key) {
    return "{\"r\":1,\"lora_alpha\":1,\"alpha_pattern\":{\"" + key + "\":2}}";
  };
  {
    const AdapterFolder folder(config("la\\\\1111111111111111111111.0"), "layers.0.q_proj");
    expect_error([&] { read_peft_adapter(folder.path.string()); }, "has a back-reference");
  }
  {
    const AdapterFolder folder(config("q{1000000000000000000000}"), "layers.0.q_proj");
    expect_error([&] { read_peft_adapter(folder.path.string()); }, "repeats more than 64 times");
  }
  {
    const AdapterFolder folder(config("(q{1,20}){20}"), "layers.0.q_proj");
    expect_error([&] { read_peft_adapter(folder.path.string()); }, "counts multiply past 256");
  }
  {
    const AdapterFolder folder(config("q_pro{1,2}j"), "layers.0.q_proj");
    EXPECT_EQ(read_peft_adapter(folder.path.string()).module, "layers.0.q_proj");
  }
  {
    const AdapterFolder folder(config("q_proj\\\\{9999\\\\}"), "layers.0.q_proj");  // escaped braces are literals
    EXPECT_EQ(read_peft_adapter(folder.path.string()).module, "layers.0.q_proj");
  }
}

TEST(FileLimits, PeftPatternsMatchInPolynomialTime) {
  // (a*)*b against 64 a's: a backtracking matcher tries ~2^64 ways and never finishes (this
  // test then hangs); the breadth-first matcher answers at once.
  const std::string module(64, 'a');
  const AdapterFolder folder("{\"r\":1,\"lora_alpha\":1,\"target_modules\":\"(a*)*b\"}", module);
  expect_error([&] { read_peft_adapter(folder.path.string()); }, "is not among target_modules");
  const AdapterFolder matching("{\"r\":1,\"lora_alpha\":1,\"target_modules\":\"(a*)*\"}", module);
  EXPECT_EQ(read_peft_adapter(matching.path.string()).module, module);
}

TEST(FileLimits, AFolderWhereAFileIsExpectedIsAnError) {
  const fs::path folder = fs::temp_directory_path() / ("lutmul_folder_" + std::to_string(getpid()));
  fs::create_directories(folder / "adapter_config.json");
  EXPECT_THROW(LinearOperator::load(folder.string()), Error);
  EXPECT_THROW(Maddness::load(folder.string()), Error);
  EXPECT_THROW(read_peft_adapter(folder.string()), Error);  // its adapter_config.json is a folder
  fs::remove_all(folder);
}

// Every input the fuzzers found (tests/cpp/data/fuzz/<target>/), through the target's own
// conversion: each must load or be rejected with lutmul::Error, and nothing else.
std::vector<fs::path> crash_inputs(const std::string& target) {
  std::vector<fs::path> files;
  const fs::path dir = fs::path(LUTMUL_TEST_DATA_DIR) / "fuzz" / target;
  if (fs::is_directory(dir))
    for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  return files;
}

std::vector<uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Byte 0 picks a kind over operator_kinds() as registered now; the test of each bug above
// builds its file directly and does not depend on that order.
TEST(FuzzRegressions, OperatorFileInputsLoadOrFailCleanly) {
  const std::vector<fs::path> inputs = crash_inputs("operator_file");
  ASSERT_FALSE(inputs.empty());
  for (const fs::path& input : inputs) {
    SCOPED_TRACE(input.filename().string());
    const std::vector<uint8_t> bytes = read_bytes(input);
    const std::vector<uint8_t> file = fuzz::operator_file_input(bytes.data(), bytes.size(), operator_kinds());
    try {
      LinearOperator::deserialize(file.data(), file.size());
    } catch (const Error&) {
    }
  }
}

// The other readers: these replay whatever lands in their crash folders (peft_adapter: a
// 54-digit back-reference, which overflowed libstdc++'s regex parser) plus the fuzzers' seed
// corpora (fuzz/corpus/), which are valid or near-valid files.
// Each input must load or throw lutmul::Error (the sanitizer build catches anything worse), and
// at least one seed per reader must load, so the parsers behind the checks are reached.
std::vector<fs::path> replay_inputs(const std::string& target) {
  std::vector<fs::path> files = crash_inputs(target);
  const fs::path seeds = fs::path(LUTMUL_FUZZ_CORPUS_DIR) / ("fuzz_" + target);
  if (fs::is_directory(seeds))
    for (const auto& entry : fs::directory_iterator(seeds)) files.push_back(entry.path());
  return files;
}

TEST(FuzzRegressions, OtherReadersInputsLoadOrFailCleanly) {
  for (const std::string target : {"maddness_file", "safetensors", "peft_adapter", "encoder_file", "encoder_config"}) {
    const std::vector<fs::path> inputs = replay_inputs(target);
    ASSERT_FALSE(inputs.empty()) << "no inputs for " << target << " in " << LUTMUL_FUZZ_CORPUS_DIR;
    size_t loaded = 0;
    for (const fs::path& input : inputs) {
      SCOPED_TRACE(input.string());
      const std::vector<uint8_t> bytes = read_bytes(input);
      try {
        if (target == "maddness_file") {
          const std::vector<uint8_t> file = fuzz::maddness_file_input(bytes.data(), bytes.size());
          Maddness::deserialize(file.data(), file.size());
        } else if (target == "safetensors") {
          const SafetensorsFile file = SafetensorsFile::parse(fuzz::safetensors_input(bytes.data(), bytes.size()));
          for (const TensorInfo& t : file.tensors()) (void)file.to_float(t.name);
        } else if (target == "encoder_file") {
          const AdapterFolder dir("{}", "unused");  // a scratch folder removed afterwards
          testing::write_bytes((dir.path / "encoder.lutmul").string(), fuzz::encoder_file_input(bytes.data(), bytes.size()));
          runtime::Encoder::load((dir.path / "encoder.lutmul").string());
        } else if (target == "encoder_config") {
          runtime::EncoderConfig::parse(std::string(bytes.begin(), bytes.end()));
        } else {
          const fuzz::PeftFolder folder = fuzz::peft_input(bytes.data(), bytes.size());
          const AdapterFolder dir("{}", "unused");
          std::ofstream(dir.path / "adapter_config.json", std::ios::binary | std::ios::trunc) << folder.config;
          testing::write_bytes((dir.path / "adapter_model.safetensors").string(), folder.weights);
          read_peft_adapter(dir.path.string());
        }
        ++loaded;
      } catch (const Error&) {
      }
    }
    EXPECT_GT(loaded, 0u) << target << ": no input loaded, so the replay never reached the parser";
  }
}

}  // namespace
}  // namespace lutmul
