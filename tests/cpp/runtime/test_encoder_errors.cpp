// Every bad input, config and weights file the encoder refuses, each with a message that
// names the problem.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "lutmul/runtime.h"
#include "runtime/tiny_bert.h"
#include "expect_error.h"

namespace lutmul::testing {
namespace {

using runtime::Encoder;
using runtime::EncoderConfig;
using Batch = RaggedBatch;


TEST(EncoderErrors, BadBatches) {
  const TinyBert bert = write_tiny_bert(TinyBertSpec{}, "bad_batches");
  const auto encoder = Encoder::load(bert.folder);
  std::vector<float> out(4 * 48 * 48);
  const std::vector<int32_t> ids = {1, 2, 3, 4};
  const std::vector<int64_t> two_two = {2, 2};
  expect_error([&] { encoder->embed(std::vector<int32_t>{1, 97}.data(), std::vector<int64_t>{2}.data(), 1, out.data()); },
               {"token id 97", "position 1", "[0, 97)"});
  expect_error([&] { encoder->embed(std::vector<int32_t>{1, 2, -5}.data(), std::vector<int64_t>{1, 2}.data(), 2, out.data()); },
               {"token id -5", "position 2", "sequence 1, token 1"});
  expect_error([&] { encoder->embed(ids.data(), std::vector<int64_t>{2, 0}.data(), 2, out.data()); },
               {"sequence 1 has length 0"});
  expect_error([&] { encoder->hidden_states(ids.data(), std::vector<int64_t>{41}.data(), 1, out.data()); },
               {"length 41", "max_position_embeddings"});
  expect_error([&] { encoder->embed(nullptr, two_two.data(), 2, out.data()); }, {"ids is null"});
  expect_error([&] { encoder->embed(ids.data(), nullptr, 2, out.data()); }, {"lengths is null"});
  expect_error([&] { encoder->embed(ids.data(), two_two.data(), 2, nullptr); }, {"out is null"});
  expect_error([&] { encoder->hidden_states(ids.data(), two_two.data(), 2, nullptr); }, {"out is null"});
  expect_error([&] { encoder->embed(ids.data(), two_two.data(), -1, out.data()); }, {"non-negative"});
  encoder->embed(nullptr, nullptr, 0, nullptr);  // an empty batch is no work, and no error
}

// The tiny model, and a copy of it whose `block`'s ffn_out has weights of 3e38: its outputs
// pass float's range for any input.
struct Overflowing {
  TinyBertSpec spec;
  std::shared_ptr<Encoder> encoder, overflowing;
};

Overflowing with_overflow_in(int block, const std::string& name) {
  Overflowing o;
  o.encoder = Encoder::load(write_tiny_bert(o.spec, name).folder);
  const std::vector<float> huge(static_cast<size_t>(o.spec.intermediate * o.spec.hidden), 3e38f);
  o.overflowing = o.encoder->with_linear(
      block, "ffn_out",
      std::make_shared<DenseLinear>(MatrixView::row_major(huge.data(), o.spec.intermediate, o.spec.hidden)));
  return o;
}

// An operator whose outputs pass float's range is no error of its own (the contract leaves
// overflow to the caller), but the encoder must not hand back the NaN embeddings it makes.
TEST(EncoderErrors, ALayerThatOverflowsIsAnErrorNotNaNEmbeddings) {
  const Overflowing o = with_overflow_in(1, "overflow");
  const Batch batch = random_batch({5, 9, 3}, o.spec.vocab, 31);
  const size_t h = static_cast<size_t>(o.spec.hidden);
  std::vector<float> out(17 * h);
  using Forward = void (Encoder::*)(const int32_t*, const int64_t*, int64_t, float*) const;
  for (Forward forward : {&Encoder::embed, &Encoder::hidden_states})
    expect_error([&] { (o.overflowing.get()->*forward)(batch.ids.data(), batch.lengths.data(), 3, out.data()); },
                 {"the forward overflowed", "sequence 0", "not finite"});
  o.encoder->embed(batch.ids.data(), batch.lengths.data(), 3, out.data());  // the original is untouched
  for (size_t j = 0; j < 3 * h; ++j) ASSERT_TRUE(std::isfinite(out[j])) << j;
}

// The same overflow in block 0: the encoder's products do not check their inputs, so the rows a
// tap would hand back (layer_inputs, hidden_through_blocks) are checked instead, and a whole
// forward still ends in the error of the last hidden states.
TEST(EncoderErrors, AnOverflowBeforeATapIsAnErrorNotRowsHandedBack) {
  const Overflowing o = with_overflow_in(0, "overflow_tap");
  const Batch batch = random_batch({5, 9, 3}, o.spec.vocab, 32);
  const size_t h = static_cast<size_t>(o.spec.hidden), tokens = 17;
  std::vector<float> rows(tokens * static_cast<size_t>(o.spec.intermediate)), out(tokens * h);
  const std::vector<std::string> layers = {"query", "attn_out", "ffn_in", "ffn_out"};
  for (const std::string& name : layers)
    expect_error([&] { o.overflowing->layer_inputs(batch.ids.data(), batch.lengths.data(), 3, 1, name, rows.data()); },
                 {"the forward overflowed", "the inputs of block 1's " + name + " of sequence 0", "not finite"});
  // Block 0's inputs come before the overflow: finite, handed back.
  o.overflowing->layer_inputs(batch.ids.data(), batch.lengths.data(), 3, 0, "ffn_out", rows.data());
  std::vector<float> start(tokens * h);
  o.encoder->layer_inputs(batch.ids.data(), batch.lengths.data(), 3, 0, "query", start.data());
  expect_error([&] { o.overflowing->hidden_through_blocks(0, 1, start.data(), batch.lengths.data(), 3, out.data()); },
               {"the inputs of block 1's query of sequence 0 are not finite"});
  expect_error([&] { o.overflowing->embed_from_block(0, start.data(), batch.lengths.data(), 3, out.data()); },
               {"the hidden states of sequence 0 are not finite after the last block"});
}

// Writes the tiny model with config.json replaced by `config`.
std::string with_config(const std::string& name, const std::string& config) {
  const TinyBert bert = write_tiny_bert(TinyBertSpec{}, name);
  write_text(bert.folder + "/config.json", config);
  return bert.folder;
}

TEST(EncoderErrors, UnsupportedArchitecturesNameTheField) {
  const TinyBertSpec spec;
  const std::string good = tiny_bert_config_json(spec);
  const auto replaced = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    text.replace(text.find(from), from.size(), to);
    return text;
  };
  expect_error([&] { EncoderConfig::parse(replaced("\"gelu\"", "\"gelu_new\"")); }, {"hidden_act", "gelu_new"});
  expect_error([&] { EncoderConfig::parse(replaced("\"gelu\"", "\"relu\"")); }, {"hidden_act", "relu"});
  expect_error([&] { EncoderConfig::parse(replaced("\"bert\"", "\"roberta\"")); }, {"model_type", "roberta"});
  expect_error([&] { EncoderConfig::parse(replaced("\"absolute\"", "\"relative_key\"")); },
               {"position_embedding_type", "relative_key"});
  expect_error([&] { EncoderConfig::parse(tiny_bert_config_json(spec, ", \"is_decoder\": true")); }, {"is_decoder"});
  expect_error([&] { EncoderConfig::parse(tiny_bert_config_json(spec, ", \"add_cross_attention\": true")); },
               {"add_cross_attention"});
  expect_error([&] { EncoderConfig::parse(replaced("\"num_attention_heads\": 4", "\"num_attention_heads\": 5")); },
               {"hidden_size 48", "num_attention_heads 5"});
  expect_error([&] { EncoderConfig::parse(replaced("\"hidden_size\": 48", "\"hidden_size\": -48")); }, {"hidden_size", "-48"});
  expect_error([&] { EncoderConfig::parse("{not json", "my.json"); }, {"my.json", "not valid JSON"});
  for (const char* field : {"model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                            "hidden_act", "layer_norm_eps", "vocab_size", "max_position_embeddings", "type_vocab_size"}) {
    std::string text = good;
    const size_t at = text.find(std::string("\"") + field + "\"");
    const size_t comma = text.find(',', at);
    text.erase(at, comma - at + 1);
    expect_error([&] { EncoderConfig::parse(text, "some/config.json"); }, {"some/config.json", "missing required field", field});
  }
  const std::string folder = with_config("bad_config", replaced("\"gelu\"", "\"gelu_new\""));
  expect_error([&] { Encoder::load(folder); }, {folder + "/config.json", "hidden_act"});
}

TEST(EncoderErrors, MissingOrWrongTensorsAreNamed) {
  TinyBert bert = write_tiny_bert(TinyBertSpec{}, "bad_tensors");
  write_tiny_bert_weights(bert, "encoder.layer.1.output.dense.bias");
  expect_error([&] { Encoder::load(bert.folder); }, {"model.safetensors", "missing tensor", "encoder.layer.1.output.dense.bias"});

  bert.shapes["encoder.layer.0.intermediate.dense.weight"] = {48, 80};  // transposed
  write_tiny_bert_weights(bert);
  expect_error([&] { Encoder::load(bert.folder); },
               {"encoder.layer.0.intermediate.dense.weight", "[48, 80]", "needs [80, 48]"});

  bert = write_tiny_bert(TinyBertSpec{}, "bad_tensors");
  const std::string path = bert.folder + "/model.safetensors";
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 100);
  expect_error([&] { Encoder::load(bert.folder); }, {"model.safetensors"});

  std::filesystem::remove(path);
  expect_error([&] { Encoder::load(bert.folder); }, {"model.safetensors", "does not exist"});
  expect_error([&] { Encoder::load(bert.folder + "/nowhere"); }, {"nowhere", "neither a model folder nor an encoder file"});
}

TEST(EncoderErrors, UnsupportedPoolingAndModules) {
  const TinyBert bert = write_tiny_bert(TinyBertSpec{}, "bad_pooling");
  write_text(bert.folder + "/1_Pooling/config.json", "{\"pooling_mode_cls_token\": false, \"pooling_mode_max_tokens\": true}");
  expect_error([&] { Encoder::load(bert.folder); }, {"1_Pooling/config.json", "pooling_mode_max_tokens"});
  write_text(bert.folder + "/1_Pooling/config.json", "{\"pooling_mode_cls_token\": true, \"pooling_mode_mean_tokens\": true}");
  expect_error([&] { Encoder::load(bert.folder); }, {"exactly one"});
  write_text(bert.folder + "/1_Pooling/config.json", "{\"pooling_mode_cls_token\": true}");
  write_text(bert.folder + "/modules.json",
             "[{\"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"}, {\"path\": \"1_Pooling\", \"type\": "
             "\"sentence_transformers.models.Pooling\"}, {\"path\": \"2_Dense\", \"type\": \"sentence_transformers.models.Dense\"}]");
  expect_error([&] { Encoder::load(bert.folder); }, {"modules.json", "sentence_transformers.models.Dense"});
  write_text(bert.folder + "/modules.json", "[{\"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"}]");
  expect_error([&] { Encoder::load(bert.folder); }, {"modules.json", "no Pooling module"});
  write_text(bert.folder + "/modules.json", "[{\"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"}]");
  write_text(bert.folder + "/sentence_bert_config.json", "{\"max_seq_length\": 41}");
  expect_error([&] { Encoder::load(bert.folder); }, {"sentence_bert_config.json", "max_seq_length"});
  write_text(bert.folder + "/sentence_bert_config.json", "{\"max_seq_length\": 16, \"do_lower_case\": false}");
  EXPECT_EQ(Encoder::load(bert.folder)->max_sequence_length(), 16);
}

}  // namespace
}  // namespace lutmul::testing
