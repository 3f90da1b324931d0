// The encoder's linear layers as slots a model compiler can list and replace (copy on write),
// and describe(): what each slot holds.
#include <algorithm>
#include <sstream>
#include <type_traits>

#include "lutmul/core/error.h"
#include "lutmul/operators/bf16_linear.h"
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

namespace {

// Query, key and value side by side (K × 3H) when all three are of kind Op: their float
// weights (bfloat16 ones widened exactly, so the fused operator rounds them to the same bits).
template <class Op>
std::shared_ptr<const LinearOperator> fuse_three(const Encoder::Block& block) {
  const Op* parts[3] = {dynamic_cast<const Op*>(block.query.get()), dynamic_cast<const Op*>(block.key.get()),
                        dynamic_cast<const Op*>(block.value.get())};
  if (parts[0] == nullptr || parts[1] == nullptr || parts[2] == nullptr) return nullptr;
  const int64_t rows = parts[0]->input_dim(), h = parts[0]->output_dim();
  std::vector<float> weights(static_cast<size_t>(rows * 3 * h)), bias(static_cast<size_t>(3 * h));
  for (int p = 0; p < 3; ++p) {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < h; ++j) {
        const auto w = parts[p]->weights()[static_cast<size_t>(i * h + j)];
        float value;
        if constexpr (std::is_same_v<Op, Bf16Linear>) value = from_bfloat16(w);
        else value = w;
        weights[static_cast<size_t>(i * 3 * h + p * h + j)] = value;
      }
    std::copy_n(parts[p]->bias().data(), h, bias.data() + p * h);
  }
  return std::make_shared<Op>(MatrixView::row_major(weights.data(), rows, 3 * h), bias.data());
}

}  // namespace

std::shared_ptr<const LinearOperator> fuse_qkv(const Encoder::Block& block) {
  if (auto dense = fuse_three<DenseLinear>(block)) return dense;
  return fuse_three<Bf16Linear>(block);
}

const Encoder::Block& Encoder::block_at(int block, const std::string& name) const {
  LUTMUL_CHECK(block >= 0 && block < static_cast<int>(blocks_.size()), "Encoder: block ", block,
               " does not exist (the model has ", blocks_.size(), ")");
  require_blocks(block, block + 1, "a layer");
  LUTMUL_CHECK(blocks_[static_cast<size_t>(block)]->slot(name) != nullptr, "Encoder: no linear layer named '", name,
               "' (expected query, key, value, attn_out, ffn_in or ffn_out)");
  return *blocks_[static_cast<size_t>(block)];
}

void Encoder::require_blocks(int first, int last, const char* what, bool embeddings) const {
  // Only an encoder holding block 0 holds the embeddings (keep_blocks drops them with it).
  LUTMUL_CHECK(first >= held_first() && last <= held_last() && (!embeddings || held_first() == 0), "Encoder: ", what,
               " needs ", (embeddings ? "the embeddings and " : ""), "blocks ", first, "..", last - 1,
               ", but this encoder holds blocks ", held_first(), "..", held_last() - 1, " only (keep_blocks)");
}

std::shared_ptr<Encoder> Encoder::copy_sharing_weights() const {
  auto encoder = std::make_shared<Encoder>(Passkey{}, config_, path_);
  encoder->max_sequence_length_ = max_sequence_length_;
  encoder->pooling_ = pooling_;
  encoder->normalize_ = normalize_;
  encoder->metadata_ = metadata_;
  encoder->weights_ = weights_;
  encoder->blocks_ = blocks_;
  encoder->held_first_ = held_first_;
  encoder->held_last_ = held_last_;
  return encoder;
}

std::shared_ptr<Encoder> Encoder::keep_blocks(int first, int last) const {
  const int blocks = static_cast<int>(blocks_.size());
  LUTMUL_CHECK(first >= 0 && first < last && last <= blocks, "Encoder::keep_blocks: blocks ", first, "..", last,
               " are not a range of this encoder's ", blocks, " blocks (0 <= first < last <= ", blocks, ")");
  require_blocks(first, last, "keep_blocks");
  auto encoder = copy_sharing_weights();
  for (int b = 0; b < blocks; ++b)
    if (b < first || b >= last) encoder->blocks_[static_cast<size_t>(b)] = nullptr;
  if (first > 0) encoder->weights_ = nullptr;  // only the first stage embeds tokens
  encoder->held_first_ = first;
  encoder->held_last_ = last;
  return encoder;
}

std::vector<LinearSlot> Encoder::linear_layers() const {
  std::vector<LinearSlot> out;
  for (int b = held_first(); b < held_last(); ++b)
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
  auto encoder = copy_sharing_weights();
  encoder->blocks_[static_cast<size_t>(block)] = std::move(replaced);
  return encoder;
}

int64_t Encoder::bytes() const {
  const auto floats = [](const std::vector<float>& v) { return static_cast<int64_t>(v.size() * sizeof(float)); };
  int64_t total = 0;
  if (weights_ != nullptr)
    total += floats(weights_->word) + floats(weights_->position) + floats(weights_->token_type) +
             floats(weights_->norm_gamma) + floats(weights_->norm_beta);
  for (const auto& block : blocks_) {
    if (block == nullptr) continue;  // not held (keep_blocks)
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
  if (held_first() > 0 || held_last() < static_cast<int>(blocks_.size()))
    out << "  holds blocks " << held_first() << ".." << held_last() - 1
        << (held_first() == 0 ? " and the embeddings" : " (no embeddings)") << " only\n";
  for (int b = held_first(); b < held_last(); ++b)
    for (const std::string& name : linear_names()) {
      const LinearOperator& op = **blocks_[static_cast<size_t>(b)]->slot(name);
      out << "  block " << b << " " << name << ": " << op.kind() << " " << op.input_dim() << " x " << op.output_dim()
          << ", " << op.bytes() << " bytes\n";
    }
  out << "  total " << bytes() << " bytes\n";
  return out.str();
}

}  // namespace lutmul::runtime
