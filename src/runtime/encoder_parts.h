// Internal: what an Encoder holds (weights, blocks) and the per-call workspace pool.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "lutmul/runtime/encoder.h"

namespace lutmul::runtime {

struct Encoder::Weights {
  std::vector<float> word;          // vocab × H
  std::vector<float> position;      // max_position_embeddings × H
  std::vector<float> token_type;    // type_vocab_size × H (row 0 is used)
  std::vector<float> norm_gamma, norm_beta;  // the embeddings' LayerNorm
};

struct Encoder::Block {
  std::shared_ptr<const LinearOperator> query, key, value, attn_out, ffn_in, ffn_out;
  // query, key and value as one H × 3H product when all three are DenseLinear (one pass over
  // the hidden states instead of three); null otherwise.
  std::shared_ptr<const LinearOperator> qkv;
  std::vector<float> attn_norm_gamma, attn_norm_beta, out_norm_gamma, out_norm_beta;

  std::shared_ptr<const LinearOperator>* slot(const std::string& name);
  const std::shared_ptr<const LinearOperator>* slot(const std::string& name) const;
};

// The names of a block's linear layers, in forward order.
const std::vector<std::string>& linear_names();
// The fused query/key/value product of three DenseLinear layers, or null.
std::shared_ptr<const LinearOperator> fuse_qkv(const Encoder::Block& block);

struct Encoder::Workspace {
  std::vector<float> hidden, projected, attention_scratch;
  std::vector<float> shared;  // q/k/v then the context (4H a token), later the feed-forward activations
  std::vector<int32_t> positions;
  std::vector<int64_t> starts;  // sequences + 1 token offsets
};

// A free list of workspaces: a call takes one (or makes one when all are in use) and gives it
// back; buffers only grow, so a call no larger than an earlier one allocates nothing.
class Encoder::WorkspacePool {
 public:
  class Lease {
   public:
    Lease(WorkspacePool& pool, std::unique_ptr<Workspace> ws) : pool_(pool), ws_(std::move(ws)) {}
    ~Lease() { pool_.give_back(std::move(ws_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Workspace& operator*() { return *ws_; }

   private:
    WorkspacePool& pool_;
    std::unique_ptr<Workspace> ws_;
  };
  Lease take() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (free_.empty()) return Lease(*this, std::make_unique<Workspace>());
    std::unique_ptr<Workspace> ws = std::move(free_.back());
    free_.pop_back();
    return Lease(*this, std::move(ws));
  }

 private:
  void give_back(std::unique_ptr<Workspace> ws) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(std::move(ws));
  }
  std::mutex mutex_;
  std::vector<std::unique_ptr<Workspace>> free_;
};

// Grows `v` to at least n elements (never shrinks: the capacity is kept for later calls).
template <typename T>
void grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}

}  // namespace lutmul::runtime
