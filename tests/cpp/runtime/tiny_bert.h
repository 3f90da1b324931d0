// Test helper: a randomly initialised BERT written to a temporary folder the way Hugging Face
// and sentence-transformers lay one out, its weights kept in double for the reference forward.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iomanip>
#include <sstream>
#include <map>
#include <random>
#include <cstring>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#include "safetensors_writer.h"

namespace lutmul::testing {

struct TinyBertSpec {
  int64_t hidden = 48, heads = 4, layers = 2, intermediate = 80;
  int64_t vocab = 97, positions = 40, type_vocab = 2;
  double eps = 1e-12;
  bool cls = true, normalize = false;
  bool modules = true;          // write modules.json and 1_Pooling/config.json
  std::string prefix = "";      // "bert." to store names the way BertModel checkpoints of
                                // BertForMaskedLM do
  uint64_t seed = 1;
  std::string dtype = "F32";    // or "F16", "BF16": weights rounded to it and stored so
};

struct TinyBert {
  TinyBertSpec spec;
  std::string folder;
  std::map<std::string, std::vector<int64_t>> shapes;  // without the prefix
  std::map<std::string, std::vector<float>> tensors;
};

// Every tensor name and shape of the spec, without the prefix.
inline std::map<std::string, std::vector<int64_t>> tiny_bert_shapes(const TinyBertSpec& s) {
  std::map<std::string, std::vector<int64_t>> out;
  out["embeddings.word_embeddings.weight"] = {s.vocab, s.hidden};
  out["embeddings.position_embeddings.weight"] = {s.positions, s.hidden};
  out["embeddings.token_type_embeddings.weight"] = {s.type_vocab, s.hidden};
  out["embeddings.LayerNorm.weight"] = {s.hidden};
  out["embeddings.LayerNorm.bias"] = {s.hidden};
  for (int64_t b = 0; b < s.layers; ++b) {
    const std::string p = "encoder.layer." + std::to_string(b) + ".";
    for (const char* name : {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"}) {
      out[p + name + ".weight"] = {s.hidden, s.hidden};
      out[p + name + ".bias"] = {s.hidden};
    }
    out[p + "intermediate.dense.weight"] = {s.intermediate, s.hidden};
    out[p + "intermediate.dense.bias"] = {s.intermediate};
    out[p + "output.dense.weight"] = {s.hidden, s.intermediate};
    out[p + "output.dense.bias"] = {s.hidden};
    for (const char* norm : {"attention.output.LayerNorm", "output.LayerNorm"}) {
      out[p + norm + ".weight"] = {s.hidden};
      out[p + norm + ".bias"] = {s.hidden};
    }
  }
  return out;
}

inline std::string exact_text(double value) {
  std::ostringstream out;
  out << std::setprecision(17) << value;
  return out.str();
}

inline std::string tiny_bert_config_json(const TinyBertSpec& s, const std::string& extra = "") {
  return "{\"architectures\": [\"BertModel\"], \"model_type\": \"bert\", \"hidden_size\": " + std::to_string(s.hidden) +
         ", \"num_hidden_layers\": " + std::to_string(s.layers) + ", \"num_attention_heads\": " + std::to_string(s.heads) +
         ", \"intermediate_size\": " + std::to_string(s.intermediate) + ", \"hidden_act\": \"gelu\", \"layer_norm_eps\": " +
         exact_text(s.eps) + ", \"vocab_size\": " + std::to_string(s.vocab) + ", \"max_position_embeddings\": " +
         std::to_string(s.positions) + ", \"type_vocab_size\": " + std::to_string(s.type_vocab) +
         ", \"position_embedding_type\": \"absolute\", \"hidden_dropout_prob\": 0.1" + extra + "}";
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

// `values` rounded to the 16-bit type (nearest, ties to even) in place, and the bytes of that type.
inline std::vector<uint8_t> round_to_16_bits(std::vector<float>& values, const std::string& dtype) {
  std::vector<uint8_t> out(values.size() * 2);
  for (size_t i = 0; i < values.size(); ++i) {
    uint16_t bits = 0;
    if (dtype == "F16") {
#if defined(__clang__) && __clang_major__ < 15
      // clang 14 has no _Float16 on x86; only the fuzz seed writer builds this with clang, in F32.
      throw std::runtime_error("tiny_bert.h: F16 weights need a compiler with _Float16 (GCC 12, clang 15)");
#else
      const _Float16 half = static_cast<_Float16>(values[i]);
      std::memcpy(&bits, &half, 2);
      values[i] = static_cast<float>(half);
#endif
    } else {
      uint32_t u = 0;
      std::memcpy(&u, &values[i], 4);
      bits = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
      u = static_cast<uint32_t>(bits) << 16;
      std::memcpy(&values[i], &u, 4);
    }
    out[2 * i] = static_cast<uint8_t>(bits), out[2 * i + 1] = static_cast<uint8_t>(bits >> 8);
  }
  return out;
}

// The safetensors file of `bert`'s tensors (all but `skip`), names prefixed, in the spec's dtype
// (the tensors were rounded to it when the model was made).
inline void write_tiny_bert_weights(const TinyBert& bert, const std::string& skip = "") {
  std::vector<RawTensor> raw;
  for (const auto& [name, values] : bert.tensors) {
    if (name == skip) continue;
    std::vector<float> copy = values;
    raw.push_back({bert.spec.prefix + name, bert.spec.dtype, bert.shapes.at(name),
                   bert.spec.dtype == "F32" ? float_bytes(values) : round_to_16_bits(copy, bert.spec.dtype)});
  }
  write_bytes(bert.folder + "/model.safetensors", safetensors_file(raw));
}

// Folders this process wrote, removed when it exits.
inline void remove_at_exit(const std::filesystem::path& folder) {
  struct Folders {
    std::vector<std::filesystem::path> paths;
    ~Folders() {
      std::error_code ignored;
      for (const auto& path : paths) std::filesystem::remove_all(path, ignored);
    }
  };
  static Folders folders;
  folders.paths.push_back(folder);
}

// Writes the model into a fresh folder under the system's temporary directory.
// A ragged batch of random token ids: every sequence's ids back to back, one length each.
struct RaggedBatch {
  std::vector<int32_t> ids;
  std::vector<int64_t> lengths;
  int64_t tokens() const { return static_cast<int64_t>(ids.size()); }
  int64_t sequences() const { return static_cast<int64_t>(lengths.size()); }
  std::vector<int32_t> sequence(size_t s) const {
    int64_t start = 0;
    for (size_t i = 0; i < s; ++i) start += lengths[i];
    return {ids.begin() + start, ids.begin() + start + lengths[s]};
  }
};

inline RaggedBatch random_batch(const std::vector<int64_t>& lengths, int64_t vocab, uint64_t seed) {
  RaggedBatch batch;
  batch.lengths = lengths;
  std::mt19937_64 rng(seed);
  for (int64_t length : lengths)
    for (int64_t i = 0; i < length; ++i) batch.ids.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab)));
  return batch;
}

inline TinyBert write_tiny_bert(const TinyBertSpec& spec, const std::string& name) {
  TinyBert bert;
  bert.spec = spec;
  // The process id in the name: test processes running at once (ctest -j, other checkouts on the
  // machine) never share a folder.
  const std::filesystem::path folder =
      std::filesystem::temp_directory_path() / ("lutmul_tiny_bert_" + name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(folder);
  std::filesystem::create_directories(folder);
  remove_at_exit(folder);
  bert.folder = folder.string();
  bert.shapes = tiny_bert_shapes(spec);
  std::mt19937_64 rng(spec.seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (const auto& [tensor, shape] : bert.shapes) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> values(static_cast<size_t>(n));
    const bool gamma = tensor.find("LayerNorm.weight") != std::string::npos;
    const bool matrix = shape.size() == 2 && tensor.find("embeddings") == std::string::npos;
    // Weights scaled as in a trained model (outputs of order 1); LayerNorm gains near 1.
    const float scale = matrix ? 1.f / std::sqrt(static_cast<float>(shape[1])) : 0.2f;
    for (float& v : values) v = (gamma ? 1.f : 0.f) + scale * normal(rng);
    if (spec.dtype != "F32") round_to_16_bits(values, spec.dtype);  // the reference sees the stored values
    bert.tensors[tensor] = std::move(values);
  }
  write_text(folder / "config.json", tiny_bert_config_json(spec));
  write_tiny_bert_weights(bert);
  if (spec.modules) {
    std::string modules =
        "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"},"
        " {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"}";
    if (spec.normalize)
      modules += ", {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", \"type\": \"sentence_transformers.models.Normalize\"}";
    write_text(folder / "modules.json", modules + "]");
    std::filesystem::create_directories(folder / "1_Pooling");
    write_text(folder / "1_Pooling" / "config.json",
               "{\"word_embedding_dimension\": " + std::to_string(spec.hidden) + ", \"pooling_mode_cls_token\": " +
                   (spec.cls ? "true" : "false") + ", \"pooling_mode_mean_tokens\": " + (spec.cls ? "false" : "true") +
                   ", \"pooling_mode_max_tokens\": false, \"pooling_mode_mean_sqrt_len_tokens\": false}");
  }
  return bert;
}

}  // namespace lutmul::testing
