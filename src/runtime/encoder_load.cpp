// Encoder::load: the folder's config, the sentence-transformers pooling files and the weights
// of model.safetensors, each tensor's name and shape checked against the config.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lutmul/core/error.h"
#include "lutmul/core/isa.h"
#include "lutmul/io/safetensors.h"
#include "lutmul/operators/bf16_linear.h"
#include "lutmul/operators/dense_linear.h"
#include "runtime/encoder_parts.h"

namespace lutmul::runtime {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const fs::path& path) {
  std::ifstream in(path);
  LUTMUL_CHECK(in.good(), "cannot open ", path.string());
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return json::parse(text.str());
  } catch (const json::exception& e) {
    detail::throw_error(path.string(), ": not valid JSON (", e.what(), ")");
  }
}

struct PoolingChoice {
  Pooling pooling = Pooling::mean;
  bool normalize = false;
};

// The pooling module's config: exactly one of mean and CLS pooling; any other mode is refused.
Pooling read_pooling_config(const fs::path& path) {
  const json config = read_json(path);
  LUTMUL_CHECK(config.is_object(), path.string(), ": expected a JSON object");
  bool mean = false, cls = false;
  for (const auto& [key, value] : config.items()) {
    if (key.rfind("pooling_mode_", 0) != 0 || !value.is_boolean() || !value.get<bool>()) continue;
    if (key == "pooling_mode_mean_tokens") mean = true;
    else if (key == "pooling_mode_cls_token") cls = true;
    else detail::throw_error(path.string(), ": '", key, "' is not supported (only mean or CLS pooling)");
  }
  LUTMUL_CHECK(mean != cls, path.string(), ": exactly one of pooling_mode_mean_tokens and pooling_mode_cls_token must be true");
  return cls ? Pooling::cls : Pooling::mean;
}

// modules.json lists Transformer, Pooling and (optionally) Normalize; a module that would
// change the embedding some other way (Dense, ...) is refused rather than skipped.
PoolingChoice read_modules(const fs::path& folder) {
  PoolingChoice choice;
  const fs::path modules_path = folder / "modules.json";
  if (!fs::exists(modules_path)) return choice;  // plain Hugging Face folder: mean, not normalised
  const json modules = read_json(modules_path);
  LUTMUL_CHECK(modules.is_array(), modules_path.string(), ": expected a JSON list of modules");
  bool found_pooling = false;
  for (const json& module : modules) {
    LUTMUL_CHECK(module.is_object() && module.contains("type") && module["type"].is_string(), modules_path.string(),
                 ": each module needs a 'type' string");
    const std::string type = module["type"].get<std::string>();
    const auto ends_with = [&](const std::string& tail) {
      return type.size() >= tail.size() && type.compare(type.size() - tail.size(), tail.size(), tail) == 0;
    };
    if (ends_with("Transformer")) continue;
    if (ends_with("Normalize")) {
      choice.normalize = true;
    } else if (ends_with("Pooling")) {
      const std::string sub = module.contains("path") && module["path"].is_string() ? module["path"].get<std::string>() : "";
      LUTMUL_CHECK(!sub.empty(), modules_path.string(), ": the Pooling module has no 'path'");
      choice.pooling = read_pooling_config(folder / sub / "config.json");
      found_pooling = true;
    } else {
      detail::throw_error(modules_path.string(), ": module type '", type, "' is not supported");
    }
  }
  LUTMUL_CHECK(found_pooling, modules_path.string(), ": no Pooling module");
  return choice;
}

int64_t read_max_sequence_length(const fs::path& folder, int64_t max_positions) {
  const fs::path path = folder / "sentence_bert_config.json";
  if (!fs::exists(path)) return max_positions;
  const json config = read_json(path);
  if (!config.is_object() || !config.contains("max_seq_length") || config["max_seq_length"].is_null()) return max_positions;
  const json& value = config["max_seq_length"];
  LUTMUL_CHECK(value.is_number_integer() && value.get<int64_t>() >= 1 && value.get<int64_t>() <= max_positions,
               path.string(), ": max_seq_length must be 1..max_position_embeddings (", max_positions, "), got ", value.dump());
  return value.get<int64_t>();
}

// Tensors by their Hugging Face names, with or without the "bert." prefix.
class TensorSource {
 public:
  explicit TensorSource(const fs::path& path) : file_(SafetensorsFile::read(path.string())) {
    if (file_.find("embeddings.word_embeddings.weight") == nullptr &&
        file_.find("bert.embeddings.word_embeddings.weight") != nullptr)
      prefix_ = "bert.";
  }
  // The tensor `name` as floats, its shape checked.
  std::vector<float> get(const std::string& name, std::vector<int64_t> shape) const {
    const std::string full = prefix_ + name;
    const TensorInfo* t = file_.find(full);
    LUTMUL_CHECK(t != nullptr, file_.origin(), ": missing tensor '", full, "'");
    LUTMUL_CHECK(t->shape == shape, file_.origin(), ": tensor '", full, "' has shape ", shape_text(t->shape),
                 ", the config needs ", shape_text(shape));
    return file_.to_float(full);
  }

 private:
  static std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }
  SafetensorsFile file_;
  std::string prefix_;
};

// A Hugging Face linear layer (weight M × K, bias M) as an operator of W transposed (K × M).
std::shared_ptr<const LinearOperator> linear_layer(const TensorSource& source, const std::string& name, int64_t k,
                                                   int64_t m, Precision precision) {
  const std::vector<float> weight = source.get(name + ".weight", {m, k});
  const std::vector<float> bias = source.get(name + ".bias", {m});
  // The M × K row-major weight read column-major is W (K × M).
  const MatrixView w = MatrixView::col_major(weight.data(), k, m, k);
  if (precision == Precision::bf16) return std::make_shared<Bf16Linear>(w, bias.data());
  return std::make_shared<DenseLinear>(w, bias.data());
}

}  // namespace

std::string precision_name(Precision precision) {
  return precision == Precision::bf16 ? "bf16" : "f32";
}

Precision parse_precision(const std::string& name) {
  if (name == "f32") return Precision::f32;
  if (name == "bf16") return Precision::bf16;
  detail::throw_error("precision '", name, "' is not one of f32, bf16");
}

std::shared_ptr<Encoder> Encoder::load(const std::string& folder, Precision precision) {
  (void)active_isa();  // an LUTMUL_ISA this CPU cannot run fails here, not at the first embed
  const fs::path root(folder);
  if (fs::is_regular_file(root)) {
    LUTMUL_CHECK(precision == Precision::f32, "Encoder::load: '", folder, "' is an encoder file, whose layers keep the "
                 "operators they were saved with; a precision applies to model folders only");
    return load_file(folder);
  }
  LUTMUL_CHECK(fs::is_directory(root), "Encoder::load: '", folder, "' is neither a model folder nor an encoder file");
  auto encoder = std::make_shared<Encoder>(Passkey{}, EncoderConfig::read((root / "config.json").string()), folder);
  const EncoderConfig& c = encoder->config_;
  const PoolingChoice pooling = read_modules(root);
  encoder->pooling_ = pooling.pooling;
  encoder->normalize_ = pooling.normalize;
  encoder->max_sequence_length_ = read_max_sequence_length(root, c.max_position_embeddings);

  const fs::path weights_path = root / "model.safetensors";
  LUTMUL_CHECK(fs::exists(weights_path), "Encoder::load: ", weights_path.string(), " does not exist");
  const TensorSource source(weights_path);
  const int64_t h = c.hidden_size, inter = c.intermediate_size;
  auto weights = std::make_shared<Weights>();
  weights->word = source.get("embeddings.word_embeddings.weight", {c.vocab_size, h});
  weights->position = source.get("embeddings.position_embeddings.weight", {c.max_position_embeddings, h});
  weights->token_type = source.get("embeddings.token_type_embeddings.weight", {c.type_vocab_size, h});
  weights->norm_gamma = source.get("embeddings.LayerNorm.weight", {h});
  weights->norm_beta = source.get("embeddings.LayerNorm.bias", {h});
  encoder->weights_ = std::move(weights);

  for (int64_t b = 0; b < c.num_hidden_layers; ++b) {
    const std::string p = "encoder.layer." + std::to_string(b) + ".";
    auto block = std::make_shared<Block>();
    block->query = linear_layer(source, p + "attention.self.query", h, h, precision);
    block->key = linear_layer(source, p + "attention.self.key", h, h, precision);
    block->value = linear_layer(source, p + "attention.self.value", h, h, precision);
    block->attn_out = linear_layer(source, p + "attention.output.dense", h, h, precision);
    block->ffn_in = linear_layer(source, p + "intermediate.dense", h, inter, precision);
    block->ffn_out = linear_layer(source, p + "output.dense", inter, h, precision);
    block->attn_norm_gamma = source.get(p + "attention.output.LayerNorm.weight", {h});
    block->attn_norm_beta = source.get(p + "attention.output.LayerNorm.bias", {h});
    block->out_norm_gamma = source.get(p + "output.LayerNorm.weight", {h});
    block->out_norm_beta = source.get(p + "output.LayerNorm.bias", {h});
    block->qkv = fuse_qkv(*block);
    encoder->blocks_.push_back(std::move(block));
  }
  return encoder;
}

}  // namespace lutmul::runtime
