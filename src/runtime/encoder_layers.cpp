// The encoder's linear layers as slots a model compiler can list and replace (copy on write),
// and describe(): what each slot holds.
#include <algorithm>
#include <sstream>

#include "lutmul/core/error.h"
#include "lutmul/operators/dense_linear.h"
#include "runtime/encoder_parts.h"

namespace lutmul::runtime {

const std::vector<std::string>& linear_names() {
  static const std::vector<std::string> names = {"query", "key", "value", "attn_out", "ffn_in", "ffn_out"};
  return names;
}

const std::shared_ptr<const LinearOperator>* Encoder::Block::slot(const std::string& name) const {
  if (name == "query") return &query;
  if (name == "key") return &key;
  if (name == "value") return &value;
  if (name == "attn_out") return &attn_out;
  if (name == "ffn_in") return &ffn_in;
  if (name == "ffn_out") return &ffn_out;
  return nullptr;
}

std::shared_ptr<const LinearOperator>* Encoder::Block::slot(const std::string& name) {
  return const_cast<std::shared_ptr<const LinearOperator>*>(static_cast<const Block*>(this)->slot(name));
}

std::shared_ptr<const LinearOperator> fuse_qkv(const Encoder::Block& block) {
  const auto* q = dynamic_cast<const DenseLinear*>(block.query.get());
  const auto* k = dynamic_cast<const DenseLinear*>(block.key.get());
  const auto* v = dynamic_cast<const DenseLinear*>(block.value.get());
  if (q == nullptr || k == nullptr || v == nullptr) return nullptr;
  const int64_t rows = q->input_dim(), h = q->output_dim();
  std::vector<float> weights(static_cast<size_t>(rows * 3 * h)), bias(static_cast<size_t>(3 * h));
  const DenseLinear* parts[3] = {q, k, v};
  for (int p = 0; p < 3; ++p) {
    for (int64_t i = 0; i < rows; ++i)
      std::copy_n(parts[p]->weights().data() + i * h, h, weights.data() + i * 3 * h + p * h);
    std::copy_n(parts[p]->bias().data(), h, bias.data() + p * h);
  }
  return std::make_shared<DenseLinear>(MatrixView::row_major(weights.data(), rows, 3 * h), bias.data());
}

const Encoder::Block& Encoder::block_at(int block, const std::string& name) const {
  LUTMUL_CHECK(block >= 0 && block < static_cast<int>(blocks_.size()), "Encoder: block ", block,
               " does not exist (the model has ", blocks_.size(), ")");
  LUTMUL_CHECK(blocks_[static_cast<size_t>(block)]->slot(name) != nullptr, "Encoder: no linear layer named '", name,
               "' (expected query, key, value, attn_out, ffn_in or ffn_out)");
  return *blocks_[static_cast<size_t>(block)];
}

std::vector<LinearSlot> Encoder::linear_layers() const {
  std::vector<LinearSlot> out;
  for (int b = 0; b < static_cast<int>(blocks_.size()); ++b)
    for (const std::string& name : linear_names()) out.push_back({b, name});
  return out;
}

std::shared_ptr<const LinearOperator> Encoder::linear(int block, const std::string& name) const {
  return *block_at(block, name).slot(name);
}

std::shared_ptr<Encoder> Encoder::with_linear(int block, const std::string& name,
                                              std::shared_ptr<const LinearOperator> op) const {
  const Block& old = block_at(block, name);
  LUTMUL_CHECK(op != nullptr, "Encoder::with_linear: the operator is null");
  const LinearOperator& current = **old.slot(name);
  LUTMUL_CHECK(op->input_dim() == current.input_dim() && op->output_dim() == current.output_dim(),
               "Encoder::with_linear: block ", block, " '", name, "' is ", current.input_dim(), " x ",
               current.output_dim(), ", the operator is ", op->input_dim(), " x ", op->output_dim());
  auto replaced = std::make_shared<Block>(old);
  *replaced->slot(name) = std::move(op);
  replaced->qkv = fuse_qkv(*replaced);
  auto encoder = std::make_shared<Encoder>(Passkey{}, config_, path_);
  encoder->max_sequence_length_ = max_sequence_length_;
  encoder->pooling_ = pooling_;
  encoder->normalize_ = normalize_;
  encoder->weights_ = weights_;
  encoder->blocks_ = blocks_;
  encoder->blocks_[static_cast<size_t>(block)] = std::move(replaced);
  return encoder;
}

int64_t Encoder::bytes() const {
  const auto floats = [](const std::vector<float>& v) { return static_cast<int64_t>(v.size() * sizeof(float)); };
  int64_t total = floats(weights_->word) + floats(weights_->position) + floats(weights_->token_type) +
                  floats(weights_->norm_gamma) + floats(weights_->norm_beta);
  for (const auto& block : blocks_) {
    for (const std::string& name : linear_names()) total += (*block->slot(name))->bytes();
    total += floats(block->attn_norm_gamma) + floats(block->attn_norm_beta) + floats(block->out_norm_gamma) +
             floats(block->out_norm_beta);
  }
  return total;
}

std::string Encoder::describe() const {
  std::ostringstream out;
  const EncoderConfig& c = config_;
  out << "BERT encoder (" << path_ << ")\n"
      << "  hidden " << c.hidden_size << ", " << c.num_hidden_layers << " layers, " << c.num_attention_heads
      << " heads, intermediate " << c.intermediate_size << ", vocabulary " << c.vocab_size << ", positions "
      << c.max_position_embeddings << ", max sequence length " << max_sequence_length_ << "\n"
      << "  pooling " << pooling_name(pooling_) << (normalize_ ? ", L2-normalised" : ", not normalised") << "\n";
  for (int b = 0; b < static_cast<int>(blocks_.size()); ++b)
    for (const std::string& name : linear_names()) {
      const LinearOperator& op = **blocks_[static_cast<size_t>(b)]->slot(name);
      out << "  block " << b << " " << name << ": " << op.kind() << " " << op.input_dim() << " x " << op.output_dim()
          << ", " << op.bytes() << " bytes\n";
    }
  out << "  total " << bytes() << " bytes\n";
  return out.str();
}

}  // namespace lutmul::runtime
