// The encoder file (Encoder::save / Encoder::load on a file): the library's container
// (src/core/file_format.h, magic "LUTMULEN", CRC-32) around
//   config.json text | max sequence length | pooling | normalise
//   | embeddings (word, position, token type) and their LayerNorm
//   | per block: its four LayerNorm vectors, then its six linear layers, each an operator file
//   | metadata: count, then (name, text) pairs
// Every size is checked against the config before anything is allocated, and each layer's
// input and output sizes against the config after it is read.
#include <string>

#include "core/file_format.h"
#include "lutmul/core/error.h"
#include "runtime/encoder_file.h"
#include "runtime/encoder_parts.h"

namespace lutmul::runtime {
namespace {

constexpr const detail::Magic& kMagic = kEncoderFileMagic;
constexpr uint32_t kVersion = kEncoderFileVersion;
constexpr const char* kWhat = "encoder file";
constexpr uint64_t kMaxConfigBytes = 1 << 20;
constexpr uint64_t kMaxMetadataEntries = 256;
constexpr uint64_t kMaxMetadataNameBytes = 256;
constexpr uint64_t kMaxMetadataTextBytes = uint64_t{1} << 30;  // a tokenizer.json is a few MB

uint64_t entries(std::initializer_list<uint64_t> dims, const char* field) {
  return detail::array_entries(kWhat, field, dims);
}

std::vector<float> finite_array(detail::ByteReader& r, const char* field, uint64_t expected) {
  std::vector<float> values = r.get_array<float>(field, expected);
  detail::check_all_finite(values, field, kWhat);
  return values;
}

}  // namespace

void Encoder::save(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  LUTMUL_CHECK(held_first() == 0 && held_last() == static_cast<int>(blocks_.size()),
               "Encoder::save: this encoder holds blocks ", held_first(), "..", held_last() - 1,
               " only (keep_blocks); save the whole encoder");
  LUTMUL_CHECK(metadata.size() <= kMaxMetadataEntries, "Encoder::save: at most ", kMaxMetadataEntries,
               " metadata entries");
  detail::ByteWriter w;
  w.put_string(config_.to_json());
  w.put<int64_t>(max_sequence_length_);
  w.put<uint8_t>(pooling_ == Pooling::cls ? 1 : 0);
  w.put<uint8_t>(normalize_ ? 1 : 0);
  w.put_fields(weights_->word, weights_->position, weights_->token_type, weights_->norm_gamma, weights_->norm_beta);
  for (const auto& block : blocks_) {
    w.put_fields(block->attn_norm_gamma, block->attn_norm_beta, block->out_norm_gamma, block->out_norm_beta);
    for (const std::string& name : linear_names()) w.put_bytes((*block->slot(name))->serialize());
  }
  w.put<uint64_t>(metadata.size());
  for (const auto& [name, text] : metadata) {
    LUTMUL_CHECK(!name.empty() && name.size() <= kMaxMetadataNameBytes && text.size() <= kMaxMetadataTextBytes,
                 "Encoder::save: metadata name '", name.substr(0, 64), "' must have 1..", kMaxMetadataNameBytes,
                 " bytes and its text at most 2^30");
    w.put_string(name);
    w.put_string(text);
  }
  detail::write_file_atomically(path, detail::wrap_payload(kMagic, kVersion, w.bytes()), "Encoder::save");
}

std::shared_ptr<Encoder> Encoder::load_file(const std::string& path) {
  return detail::load_file(path, [&](const uint8_t* data, size_t size) {
    const auto [payload, payload_size] = detail::unwrap_payload(data, size, kMagic, kVersion, kWhat);
    detail::ByteReader r(payload, payload_size, kWhat);
    auto encoder =
        std::make_shared<Encoder>(Passkey{}, EncoderConfig::parse(r.get_string("config", kMaxConfigBytes), "encoder file's config"), path);
    const EncoderConfig& c = encoder->config_;
    encoder->max_sequence_length_ = r.get<int64_t>("max sequence length");
    LUTMUL_CHECK(encoder->max_sequence_length_ >= 1 && encoder->max_sequence_length_ <= c.max_position_embeddings, kWhat,
                 " is corrupt: max sequence length ", encoder->max_sequence_length_);
    const auto pooling = r.get<uint8_t>("pooling"), normalize = r.get<uint8_t>("normalise");
    LUTMUL_CHECK(pooling <= 1 && normalize <= 1, kWhat, " is corrupt: pooling or normalise flag");
    encoder->pooling_ = pooling == 1 ? Pooling::cls : Pooling::mean;
    encoder->normalize_ = normalize == 1;

    const auto h = static_cast<uint64_t>(c.hidden_size), inter = static_cast<uint64_t>(c.intermediate_size);
    auto weights = std::make_shared<Weights>();
    weights->word = finite_array(r, "word embeddings", entries({static_cast<uint64_t>(c.vocab_size), h}, "word embeddings"));
    weights->position = finite_array(
        r, "position embeddings", entries({static_cast<uint64_t>(c.max_position_embeddings), h}, "position embeddings"));
    weights->token_type =
        finite_array(r, "token type embeddings", entries({static_cast<uint64_t>(c.type_vocab_size), h}, "token types"));
    weights->norm_gamma = finite_array(r, "embedding LayerNorm", h);
    weights->norm_beta = finite_array(r, "embedding LayerNorm", h);
    encoder->weights_ = std::move(weights);

    for (int64_t b = 0; b < c.num_hidden_layers; ++b) {
      auto block = std::make_shared<Block>();
      block->attn_norm_gamma = finite_array(r, "attention LayerNorm", h);
      block->attn_norm_beta = finite_array(r, "attention LayerNorm", h);
      block->out_norm_gamma = finite_array(r, "output LayerNorm", h);
      block->out_norm_beta = finite_array(r, "output LayerNorm", h);
      for (const std::string& name : linear_names()) {
        const std::vector<uint8_t> file = r.get_array<uint8_t>("linear layer");
        std::shared_ptr<const LinearOperator> op = LinearOperator::deserialize(file.data(), file.size());
        const uint64_t in = name == "ffn_out" ? inter : h, out = name == "ffn_in" ? inter : h;
        LUTMUL_CHECK(static_cast<uint64_t>(op->input_dim()) == in && static_cast<uint64_t>(op->output_dim()) == out, kWhat,
                     " is corrupt: block ", b, " '", name, "' is ", op->input_dim(), " x ", op->output_dim(),
                     ", the config needs ", in, " x ", out);
        *block->slot(name) = std::move(op);
      }
      block->qkv = fuse_qkv(*block);
      encoder->blocks_.push_back(std::move(block));
    }
    const auto count = r.get<uint64_t>("metadata count");
    LUTMUL_CHECK(count <= kMaxMetadataEntries, kWhat, " is corrupt: ", count, " metadata entries");
    for (uint64_t i = 0; i < count; ++i) {
      std::string name = r.get_string("metadata name", kMaxMetadataNameBytes);
      encoder->metadata_[std::move(name)] = r.get_string("metadata text", kMaxMetadataTextBytes);
    }
    LUTMUL_CHECK(r.done(), kWhat, " is corrupt: unexpected bytes after the metadata");
    return encoder;
  });
}

}  // namespace lutmul::runtime
