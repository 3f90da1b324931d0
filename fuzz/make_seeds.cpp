// Writes the seed corpora of the fuzz targets: small valid inputs of every kind, in each
// target's input layout (the comment at the top of each fuzz_*.cpp), plus the checked-in
// files of tests/cpp/data. Run by fuzz/make_seeds.sh; its output is committed under
// fuzz/corpus/<target>/. Deterministic: the same library writes the same bytes.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/file_format.h"
#include "fuzz_util.h"
#include "lutmul/lutmul.h"
#include "lutmul/runtime.h"
#include "runtime/encoder_file.h"
#include "runtime/tiny_bert.h"

using namespace lutmul;
namespace fs = std::filesystem;

namespace {

fs::path out_dir;

void write(const std::string& target, const std::string& name, const std::vector<uint8_t>& bytes) {
  const fs::path dir = out_dir / target;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> prefixed(uint8_t first, const std::vector<uint8_t>& rest) {
  std::vector<uint8_t> out{first};
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

std::vector<uint8_t> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Deterministic values in [-1, 1], and rows of low rank so MADDNESS has structure to learn.
std::vector<float> values(size_t n, unsigned seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::sin(static_cast<float>(i * 37 + seed * 101) * 0.13f);
  return v;
}

std::vector<uint8_t> bytes_of(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(float));
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

constexpr int64_t kK = 8, kM = 4, kRows = 64;

void operator_seeds() {
  const std::vector<float> w = values(kK * kM, 1), bias = values(kM, 2), rows = values(kRows * kK, 3);
  const MatrixView W = MatrixView::row_major(w.data(), kK, kM);
  const MatrixView X = MatrixView::row_major(rows.data(), kRows, kK);
  const std::vector<std::string> kinds = operator_kinds();
  struct Seed {
    std::string kind, name;
    BuildParams params;
  };
  const std::vector<Seed> seeds = {
      {"dense", "dense", {}},
      {"bf16", "bf16", {}},
      {"int8", "int8_dynamic", {}},
      {"int8", "int8_static", {{"activations", "static"}}},
      {"int8", "int8_smoothed", {{"smoothing", "0.6"}}},
      {"sparse", "sparse", {{"sparsity", "0.5"}}},
      {"sparse24", "sparse24", {}},
      {"channel_pruned", "channel_pruned_outputs", {{"fraction", "0.5"}}},
      {"channel_pruned", "channel_pruned_inputs", {{"fraction", "0.5"}, {"channels", "inputs"}}},
      {"low_rank", "low_rank", {{"rank", "2"}}},
      {"maddness", "maddness", {{"ncodebooks", "2"}}},
      {"maddness", "maddness_64_leaves", {{"ncodebooks", "2"}, {"leaves", "64"}}},  // model format version 3
      {"lora", "lora", {}},
  };
  for (const Seed& seed : seeds) {
    std::unique_ptr<LinearOperator> op = build(seed.kind, W, bias.data(), &X, seed.params);
    if (auto* lora = dynamic_cast<LoraLinear*>(op.get())) {
      // Two adapters, one merged, one removed slot between them: every branch of the reader.
      const std::vector<float> a = values(kK * 2, 4), b = values(2 * kM, 5);
      lora->add_adapter("first", MatrixView::row_major(a.data(), kK, 2), MatrixView::row_major(b.data(), 2, kM), 4.f);
      lora->add_adapter("gone", MatrixView::row_major(a.data(), kK, 2), MatrixView::row_major(b.data(), 2, kM), 1.f);
      lora->add_adapter("merged", MatrixView::row_major(a.data(), kK, 2), MatrixView::row_major(b.data(), 2, kM), 2.f);
      lora->remove_adapter("gone");
      lora->merge("merged");
    }
    const auto index = static_cast<uint8_t>(std::find(kinds.begin(), kinds.end(), seed.kind) - kinds.begin());
    write("fuzz_operator_file", seed.name, prefixed(index, op->payload()));
    if (seed.kind == "maddness")
      write("fuzz_maddness_file", seed.name == "maddness" ? "operator_payload" : "operator_payload_64_leaves",
            prefixed(0, op->payload()));
  }
  const auto legacy = static_cast<uint8_t>(kinds.size()), raw = static_cast<uint8_t>(kinds.size() + 1);
  const std::vector<uint8_t> dense_file = build("dense", W, bias.data())->serialize();
  write("fuzz_operator_file", "raw_dense_file", prefixed(raw, dense_file));

  // A model saved by Maddness::save, and the checked-in 0.1 file (container and payload).
  MaddnessConfig config;
  config.ncodebooks = 2;
  Maddness model(config);
  model.fit(X, W, bias.data());
  write("fuzz_maddness_file", "model_payload", prefixed(0, model.payload()));
  write("fuzz_maddness_file", "raw_model_file", prefixed(2, model.serialize()));
  const std::vector<uint8_t> v1 = read_file(fs::path(LUTMUL_TEST_DATA_DIR) / "maddness_v1.lutmul");
  const auto v1_payload = detail::unwrap_versioned_payload(v1.data(), v1.size(), fuzz::kLegacyModelMagic, 1, 2, "model file");
  std::vector<uint8_t> legacy_input{0};  // version 1 + 0 % 2
  legacy_input.insert(legacy_input.end(), v1_payload.data, v1_payload.data + v1_payload.size);
  write("fuzz_maddness_file", "data_maddness_v1_payload", prefixed(1, legacy_input));
  write("fuzz_maddness_file", "data_maddness_v1_raw", prefixed(2, v1));
  write("fuzz_operator_file", "data_maddness_v1_payload", prefixed(legacy, legacy_input));
  write("fuzz_operator_file", "data_maddness_v1_raw", prefixed(raw, v1));
}

std::string tensor_entry(const std::string& name, const std::string& dtype, const std::string& shape, size_t begin,
                         size_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(end) + "]}";
}

void safetensors_seeds() {
  // Every dtype once, a scalar, an empty tensor and metadata, in the repaired layout (odd byte 0).
  const std::vector<uint8_t> f32 = bytes_of(values(6, 7));
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  std::vector<uint8_t> data;
  const struct {
    const char* dtype;
    size_t size;
  } dtypes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
                {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  for (const auto& d : dtypes) {
    const size_t begin = data.size(), bytes = 2 * 3 * d.size;
    for (size_t i = 0; i < bytes; ++i) data.push_back(static_cast<uint8_t>(d.size == 1 ? i % 2 : (i * 29) % 61));
    header += "," + tensor_entry(std::string("t_") + d.dtype, d.dtype, "[2,3]", begin, begin + bytes);
  }
  header += "," + tensor_entry("scalar", "F32", "[]", data.size(), data.size() + 4);
  data.insert(data.end(), f32.begin(), f32.begin() + 4);
  header += "," + tensor_entry("empty", "F32", "[0,5]", data.size(), data.size()) + "}";
  const std::string joined = fuzz::join_with_nul({header, std::string(data.begin(), data.end())});
  write("fuzz_safetensors", "every_dtype", prefixed(1, bytes_of(joined)));
  const std::vector<uint8_t> whole = fuzz::safetensors_bytes(header, std::string(data.begin(), data.end()));
  write("fuzz_safetensors", "every_dtype_raw", prefixed(0, whole));
  const std::string one = "{" + tensor_entry("w", "F32", "[2,3]", 0, 24) + "}";
  write("fuzz_safetensors", "one_f32", prefixed(1, bytes_of(fuzz::join_with_nul({one, std::string(24, '\x01')}))));
}

void peft_seeds() {
  const std::vector<uint8_t> a = bytes_of(values(2 * kK, 8)), b = bytes_of(values(kM * 2, 9));
  const std::string a_bytes(a.begin(), a.end()), b_bytes(b.begin(), b.end());
  auto header = [&](const std::string& module, const std::string& dtype, size_t size) {
    const size_t a_size = 2 * kK * size, b_size = kM * 2 * size;
    const std::string prefix = module.empty() ? "" : module + ".";
    return "{" + tensor_entry(prefix + "lora_A.weight", dtype, "[2," + std::to_string(kK) + "]", 0, a_size) + "," +
           tensor_entry(prefix + "lora_B.weight", dtype, "[" + std::to_string(kM) + ",2]", a_size, a_size + b_size) +
           "}";
  };
  const std::string module = "base_model.model.layers.0.self_attn.q_proj";
  const std::string config =
      "{\"peft_type\":\"LORA\",\"r\":2,\"lora_alpha\":16,\"target_modules\":[\"q_proj\",\"v_proj\"],"
      "\"use_rslora\":false,\"use_dora\":false,\"rank_pattern\":{},\"alpha_pattern\":{}}";
  write("fuzz_peft_adapter", "one_module",
        bytes_of(fuzz::join_with_nul({config, header(module, "F32", 4), a_bytes + b_bytes})));
  // Patterns and a regular-expression target list, half-precision tensors, no prefix.
  const std::string patterns =
      "{\"r\":4,\"lora_alpha\":8,\"target_modules\":\".*q_proj\",\"use_rslora\":true,"
      "\"rank_pattern\":{\"q_proj\":2},\"alpha_pattern\":{\"layers\\\\.0\\\\..*\":32}}";
  const std::string half_data(static_cast<size_t>((2 * kK + kM * 2) * 2), '\x3c');
  write("fuzz_peft_adapter", "patterns_bf16", bytes_of(fuzz::join_with_nul({patterns, header(module, "BF16", 2), half_data})));
  write("fuzz_peft_adapter", "no_prefix_f16",
        bytes_of(fuzz::join_with_nul({"{\"r\":2,\"lora_alpha\":2}", header("", "F16", 2), half_data})));
}

// An encoder file of a tiny BERT (tests/cpp/runtime/tiny_bert.h) with layers of three kinds,
// as a payload to wrap and as a whole file; and config.json texts for the config target.
void encoder_seeds() {
  testing::TinyBertSpec spec;
  spec.hidden = 8;
  spec.heads = 2;
  spec.layers = 1;
  spec.intermediate = 16;
  spec.vocab = 11;
  spec.positions = 6;
  const testing::TinyBert bert = testing::write_tiny_bert(spec, "fuzz_seed");
  auto encoder = runtime::Encoder::load(bert.folder);
  const auto weight = [&](const std::string& name) { return bert.tensors.at(name + ".weight").data(); };
  const auto bias = [&](const std::string& name) { return bert.tensors.at(name + ".bias").data(); };
  const std::string key = "encoder.layer.0.attention.self.key", ffn = "encoder.layer.0.intermediate.dense";
  encoder = encoder->with_linear(0, "key", std::make_shared<Int8Linear>(MatrixView::col_major(weight(key), 8, 8), bias(key)));
  encoder = encoder->with_linear(0, "ffn_in", std::make_shared<Bf16Linear>(MatrixView::col_major(weight(ffn), 8, 16), bias(ffn)));
  const fs::path file = fs::path(bert.folder) / "encoder.lutmul";
  encoder->save(file.string(), {{"tokenizer.json", "{}"}, {"lutmul.plan", "{\"layers\": [], \"summary\": {}}"}});
  const std::vector<uint8_t> bytes = read_file(file);
  const auto payload = detail::unwrap_payload(bytes.data(), bytes.size(), runtime::kEncoderFileMagic,
                                              runtime::kEncoderFileVersion, "encoder file");
  write("fuzz_encoder_file", "tiny_bert_payload", prefixed(0, std::vector<uint8_t>(payload.first, payload.first + payload.second)));
  write("fuzz_encoder_file", "tiny_bert_raw", prefixed(1, bytes));

  write("fuzz_encoder_config", "tiny_bert", bytes_of(testing::tiny_bert_config_json(spec)));
  write("fuzz_encoder_config", "minilm",
        bytes_of("{\"architectures\": [\"BertModel\"], \"attention_probs_dropout_prob\": 0.1, \"gradient_checkpointing\": "
                 "false, \"hidden_act\": \"gelu\", \"hidden_dropout_prob\": 0.1, \"hidden_size\": 384, "
                 "\"initializer_range\": 0.02, \"intermediate_size\": 1536, \"layer_norm_eps\": 1e-12, "
                 "\"max_position_embeddings\": 512, \"model_type\": \"bert\", \"num_attention_heads\": 12, "
                 "\"num_hidden_layers\": 6, \"pad_token_id\": 0, \"position_embedding_type\": \"absolute\", "
                 "\"type_vocab_size\": 2, \"use_cache\": true, \"vocab_size\": 30522, \"is_decoder\": false}"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR (fuzz/corpus)\n", argv[0]);
    return 2;
  }
  out_dir = argv[1];
  operator_seeds();
  safetensors_seeds();
  peft_seeds();
  encoder_seeds();
  return 0;
}
