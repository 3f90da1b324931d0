// config.json of a BERT encoder: every field the forward depends on is required and checked,
// and every architecture variant the runtime does not implement is refused by name.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lutmul/core/error.h"
#include "lutmul/runtime/encoder.h"

namespace lutmul::runtime {
namespace {

using nlohmann::json;

const json& field(const json& config, const char* name, const std::string& origin) {
  const auto it = config.find(name);
  LUTMUL_CHECK(it != config.end(), origin, ": missing required field '", name, "'");
  return *it;
}

int64_t positive_int(const json& config, const char* name, const std::string& origin) {
  const json& value = field(config, name, origin);
  LUTMUL_CHECK(value.is_number_integer() && value.get<int64_t>() >= 1, origin, ": '", name,
               "' must be a positive integer, got ", value.dump());
  return value.get<int64_t>();
}

std::string text(const json& config, const char* name, const std::string& origin) {
  const json& value = field(config, name, origin);
  LUTMUL_CHECK(value.is_string(), origin, ": '", name, "' must be a string, got ", value.dump());
  return value.get<std::string>();
}

// An optional boolean field that must be false when present.
void must_be_false(const json& config, const char* name, const std::string& origin, const char* why) {
  const auto it = config.find(name);
  if (it == config.end() || it->is_null()) return;
  LUTMUL_CHECK(it->is_boolean() && !it->get<bool>(), origin, ": '", name, "' = ", it->dump(),
               " is not supported (", why, ")");
}

}  // namespace

std::string pooling_name(Pooling pooling) { return pooling == Pooling::cls ? "cls" : "mean"; }

EncoderConfig EncoderConfig::parse(const std::string& json_text, const std::string& origin) {
  json config;
  try {
    config = json::parse(json_text);
  } catch (const json::exception& e) {
    detail::throw_error(origin, ": not valid JSON (", e.what(), ")");
  }
  LUTMUL_CHECK(config.is_object(), origin, ": expected a JSON object");
  EncoderConfig c;
  c.model_type = text(config, "model_type", origin);
  LUTMUL_CHECK(c.model_type == "bert", origin, ": model_type '", c.model_type, "' is not supported (only 'bert')");
  c.hidden_size = positive_int(config, "hidden_size", origin);
  c.num_hidden_layers = positive_int(config, "num_hidden_layers", origin);
  c.num_attention_heads = positive_int(config, "num_attention_heads", origin);
  c.intermediate_size = positive_int(config, "intermediate_size", origin);
  c.vocab_size = positive_int(config, "vocab_size", origin);
  c.max_position_embeddings = positive_int(config, "max_position_embeddings", origin);
  c.type_vocab_size = positive_int(config, "type_vocab_size", origin);
  c.hidden_act = text(config, "hidden_act", origin);
  LUTMUL_CHECK(c.hidden_act == "gelu", origin, ": hidden_act '", c.hidden_act,
               "' is not supported (only 'gelu', the exact erf GELU)");
  const json& eps = field(config, "layer_norm_eps", origin);
  LUTMUL_CHECK(eps.is_number() && eps.get<double>() > 0.0, origin, ": 'layer_norm_eps' must be a positive number, got ",
               eps.dump());
  c.layer_norm_eps = eps.get<double>();
  LUTMUL_CHECK(c.hidden_size % c.num_attention_heads == 0, origin, ": hidden_size ", c.hidden_size,
               " is not a multiple of num_attention_heads ", c.num_attention_heads);
  LUTMUL_CHECK(c.vocab_size <= INT32_MAX && c.max_position_embeddings <= INT32_MAX, origin,
               ": vocab_size and max_position_embeddings must fit in 32 bits");
  const auto position_type = config.find("position_embedding_type");
  if (position_type != config.end() && !position_type->is_null())
    LUTMUL_CHECK(position_type->is_string() && position_type->get<std::string>() == "absolute", origin,
                 ": position_embedding_type ", position_type->dump(), " is not supported (only 'absolute')");
  must_be_false(config, "is_decoder", origin, "the runtime runs encoders");
  must_be_false(config, "add_cross_attention", origin, "the runtime runs encoders");
  return c;
}

std::string EncoderConfig::to_json() const {
  json config = {{"model_type", model_type},
                 {"hidden_size", hidden_size},
                 {"num_hidden_layers", num_hidden_layers},
                 {"num_attention_heads", num_attention_heads},
                 {"intermediate_size", intermediate_size},
                 {"vocab_size", vocab_size},
                 {"max_position_embeddings", max_position_embeddings},
                 {"type_vocab_size", type_vocab_size},
                 {"hidden_act", hidden_act},
                 {"layer_norm_eps", layer_norm_eps},
                 {"position_embedding_type", "absolute"}};
  return config.dump();  // doubles are written with enough digits to read back the same value
}

EncoderConfig EncoderConfig::read(const std::string& path) {
  std::ifstream in(path);
  LUTMUL_CHECK(in.good(), "cannot open ", path);
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

}  // namespace lutmul::runtime
