// A BERT-style sentence encoder run by lutmul: loaded from a Hugging Face / sentence-transformers
// folder, every linear layer a LinearOperator, input a ragged batch of token ids (all
// sequences' ids concatenated, one length per sequence, no padding).
//
// Supported: model_type "bert", absolute position embeddings, exact (erf) GELU, an encoder
// (not a decoder). Any other value of those fields is a lutmul::Error naming the field.
// Token type ids are all 0 (sentence embedding models take one segment).
//
// The folder holds:
//   config.json                the architecture (fields checked, see EncoderConfig)
//   model.safetensors          the weights, F32 (F16/BF16 widened), names with or without "bert."
//   modules.json               optional: sentence-transformers modules; the Pooling module's
//                              folder (usually 1_Pooling) holds config.json with
//                              pooling_mode_mean_tokens or pooling_mode_cls_token, and a
//                              Normalize module means L2-normalised embeddings. Without it:
//                              mean pooling, no normalisation.
//   sentence_bert_config.json  optional: max_seq_length (else max_position_embeddings)
//
// An Encoder is immutable after load and shared: any number of threads may call embed and
// hidden_states at once. Each call takes a scratch workspace from a pool in the encoder, so
// calls after the first at the same or a smaller size allocate nothing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lutmul/operators/linear_operator.h"

namespace lutmul::runtime {

struct EncoderConfig {
  std::string model_type = "bert";
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t intermediate_size = 0;
  std::string hidden_act = "gelu";
  double layer_norm_eps = 1e-12;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  int64_t type_vocab_size = 0;

  // Parses and checks a config.json text; `origin` names the file in messages.
  static EncoderConfig parse(const std::string& json_text, const std::string& origin = "config.json");
  static EncoderConfig read(const std::string& path);
  // The fields above as a config.json text that parse() reads back to the same config.
  std::string to_json() const;
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
};

enum class Pooling { mean, cls };

// The operator every linear layer gets on load: f32 (DenseLinear, exact) or bf16
// (Bf16Linear: bfloat16 weights and activations, float accumulation; about 1.6x the sentences/s
// on CPUs with AVX512-BF16, 2.6x with AMX). Other kinds plug in per layer with with_linear.
enum class Precision { f32, bf16 };
std::string precision_name(Precision precision);  // "f32", "bf16"
Precision parse_precision(const std::string& name);  // lutmul::Error for another name
std::string pooling_name(Pooling pooling);  // "mean", "cls"

// One linear layer of the encoder: its block (0-based) and its role.
struct LinearSlot {
  int block = 0;
  std::string name;  // "query", "key", "value", "attn_out", "ffn_in", "ffn_out"
};

class Encoder {
 public:
  // Loads the model folder described above, or an encoder file written by save() (then
  // `precision` must stay f32: the file's layers keep the operators they were saved with).
  // Throws lutmul::Error naming the file and the field or tensor that is missing or wrong.
  static std::shared_ptr<Encoder> load(const std::string& path, Precision precision = Precision::f32);

  // The whole encoder in one file that load() reads without the model folder: config,
  // pooling, embeddings, LayerNorms and every linear layer in its own operator format (so
  // any kind, compressed ones included), plus `metadata` (text by name: the tokenizer, a
  // compile plan). Versioned, CRC-checked, written atomically (a failure keeps the old file).
  void save(const std::string& path, const std::map<std::string, std::string>& metadata = {}) const;
  // What save() stored beside the encoder (empty for an encoder loaded from a folder).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  const EncoderConfig& config() const { return config_; }
  int64_t hidden_size() const { return config_.hidden_size; }
  int64_t max_sequence_length() const { return max_sequence_length_; }
  Pooling pooling() const { return pooling_; }
  bool normalize() const { return normalize_; }
  const std::string& path() const { return path_; }

  // The last hidden states of a ragged batch: `ids` holds the lengths[0] + ... +
  // lengths[sequences − 1] token ids of all sequences back to back; `out` receives as many
  // rows of hidden_size() floats, row-major. Each length is 1..max_position_embeddings,
  // each id 0..vocab_size − 1 (a lutmul::Error names the first bad one and its position).
  // A forward whose values pass float's range (a layer's weights or approximation unfit for
  // the input) is a lutmul::Error naming the first such sequence, never NaN rows.
  void hidden_states(const int32_t* ids, const int64_t* lengths, int64_t sequences, float* out) const;
  // The pooled (and, if the model says so, L2-normalised) embeddings: sequences × hidden_size().
  void embed(const int32_t* ids, const int64_t* lengths, int64_t sequences, float* out) const;

  // The linear layers, block by block, in the order of LinearSlot's names.
  std::vector<LinearSlot> linear_layers() const;
  std::shared_ptr<const LinearOperator> linear(int block, const std::string& name) const;
  // A new encoder sharing everything with this one but the layer at (block, name), which
  // becomes `op` (same input and output sizes, else lutmul::Error).
  std::shared_ptr<Encoder> with_linear(int block, const std::string& name,
                                       std::shared_ptr<const LinearOperator> op) const;

  // The rows layer (block, name) reads for this batch, as this encoder computes them (its own
  // operators before that layer included): one row of linear(block, name)->input_dim()
  // floats per token into `out`. The forward stops there. A model compiler fits each layer
  // on these (sequential calibration: the compressed layers before it shape its inputs).
  void layer_inputs(const int32_t* ids, const int64_t* lengths, int64_t sequences, int block, const std::string& name,
                    float* out) const;

  // The embeddings of a batch whose hidden states entering block `block` are given (as
  // layer_inputs(..., block, "query") returns them: one row of hidden_size() floats per
  // token): the blocks from `block` on, then pooling. A compiler measuring a change to a late
  // layer skips the blocks before it.
  void embed_from_block(int block, const float* hidden, const int64_t* lengths, int64_t sequences, float* out) const;
  // The hidden states leaving block `last` − 1 of a batch whose hidden states entering block
  // `first` are given (same layout): blocks first..last − 1 only, 0 <= first < last <=
  // number of blocks. A pipeline stage that holds a group of blocks runs this; with `last`
  // the number of blocks it gives the last hidden states (checked finite, as hidden_states).
  void hidden_through_blocks(int first, int last, const float* hidden, const int64_t* lengths, int64_t sequences,
                             float* out) const;

  // A new encoder holding only blocks first..last − 1, and the embedding tables only when
  // first == 0: what a pipeline stage needs (the weights it drops are freed once no encoder
  // holds them). A call needing a block or table it does not hold is a lutmul::Error naming
  // what it holds; save() refuses it. 0 <= first < last <= number of blocks.
  std::shared_ptr<Encoder> keep_blocks(int first, int last) const;
  // The blocks this encoder holds: [held_first(), held_last()) (all, unless keep_blocks made it).
  int held_first() const { return held_first_; }
  int held_last() const { return held_last_ < 0 ? static_cast<int>(blocks_.size()) : held_last_; }

  // Architecture, pooling, each layer's operator kind and bytes, total bytes.
  std::string describe() const;
  // Bytes of all weights: embeddings, LayerNorms and every linear operator.
  int64_t bytes() const;

  struct Weights;     // embeddings and LayerNorm parameters (src/runtime/encoder_parts.h)
  struct Block;       // one transformer block's operators
  struct Workspace;   // per-call scratch
  struct Tap;         // where layer_inputs stops the forward
  class WorkspacePool;
  class Passkey {     // only load and with_linear make encoders (make_shared needs a public constructor)
    Passkey() = default;
    friend class Encoder;
  };
  Encoder(Passkey, EncoderConfig config, std::string path);
  ~Encoder();

 private:
  void check_lengths(const int64_t* lengths, int64_t sequences, int64_t& tokens) const;
  void check_batch(const int32_t* ids, const int64_t* lengths, int64_t sequences, int64_t& tokens) const;
  // Returns false when `tap` stopped it before the end (its rows copied out).
  // From the embeddings, or (with `start_hidden`) from block `start_block`'s input.
  bool forward(const int32_t* ids, const int64_t* lengths, int64_t sequences, int64_t tokens, Workspace& ws,
               const Tap* tap = nullptr, int start_block = 0, const float* start_hidden = nullptr) const;
  // Error naming the first sequence whose rows (tokens × width, contiguous) are not finite:
  // "the <what> of sequence s are not finite<where>".
  void check_rows_finite(const float* rows, int64_t width, const int64_t* lengths, int64_t sequences, int64_t tokens,
                         const std::string& what, const char* where) const;
  void pool(const int64_t* lengths, int64_t sequences, const Workspace& ws, float* out) const;
  static std::shared_ptr<Encoder> load_file(const std::string& path);
  const Block& block_at(int block, const std::string& name) const;
  // Error unless this encoder holds blocks first..last − 1 (and the embeddings if asked).
  void require_blocks(int first, int last, const char* what, bool embeddings = false) const;
  std::shared_ptr<Encoder> copy_sharing_weights() const;

  EncoderConfig config_;
  std::string path_;
  int64_t max_sequence_length_ = 0;
  Pooling pooling_ = Pooling::mean;
  bool normalize_ = false;
  std::shared_ptr<const Weights> weights_;
  std::vector<std::shared_ptr<const Block>> blocks_;  // null outside the held range
  int held_first_ = 0;
  int held_last_ = -1;  // -1: every block
  std::shared_ptr<WorkspacePool> workspaces_;  // each encoder (also from with_linear) has its own
  std::map<std::string, std::string> metadata_;
};

}  // namespace lutmul::runtime
