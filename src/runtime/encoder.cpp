// The encoder's forward over a ragged batch: embeddings, then per block the query/key/value
// product, attention per (sequence, head), the output projection with residual + LayerNorm,
// the feed-forward pair with GELU and residual + LayerNorm; then pooling. The linear layers
// split their rows among lutmul's threads themselves; the glue splits rows, (sequence, head)
// pairs and sequences here.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/kernel_registry.h"
#include "lutmul/core/error.h"
#include "lutmul/core/threading.h"
#include "lutmul/operators/bf16_linear.h"
#include "lutmul/operators/dense_linear.h"
#include "operators/operator_skeleton.h"
#include "runtime/encoder_parts.h"

namespace lutmul::runtime {
namespace {

// Runs work(begin, end) over [0, count) in one contiguous range per thread; small counts stay
// on the calling thread (a parallel region costs more than a few rows of glue).
template <class Work>
void parallel_ranges(int64_t count, int64_t min_per_thread, Work&& work) {
  const int64_t most = std::max<int64_t>(1, count / std::max<int64_t>(1, min_per_thread));
  const int threads = static_cast<int>(std::min<int64_t>(num_threads(), most));
  if (threads <= 1) {
    if (count > 0) work(int64_t{0}, count);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t parts = omp_get_num_threads(), part = omp_get_thread_num();
    const int64_t begin = count * part / parts, end = count * (part + 1) / parts;
    if (begin < end) work(begin, end);
  }
}

// A layer's product on the encoder's own rows. DenseLinear skips its check of finite values:
// forward() checks the last hidden states once instead, and a value that is not finite
// anywhere reaches them (every block adds its input to its output before a LayerNorm, which
// makes the whole row NaN). That check was 2 % of the exact forward (docs/experiments.md).
void product(const LinearOperator& op, const MatrixView& X, float* Y, int64_t ldy) {
  if (const auto* dense = dynamic_cast<const DenseLinear*>(&op)) return dense->forward_unchecked(X, Y, ldy);
  op.forward(X, Y, ldy);
}

}  // namespace

Encoder::Encoder(Passkey, EncoderConfig config, std::string path)
    : config_(std::move(config)), path_(std::move(path)), workspaces_(std::make_shared<WorkspacePool>()) {}

Encoder::~Encoder() = default;

void Encoder::check_lengths(const int64_t* lengths, int64_t sequences, int64_t& tokens) const {
  LUTMUL_CHECK(sequences >= 0, "Encoder: the number of sequences must be non-negative, got ", sequences);
  LUTMUL_CHECK(sequences == 0 || lengths != nullptr, "Encoder: lengths is null");
  tokens = 0;
  for (int64_t s = 0; s < sequences; ++s) {
    LUTMUL_CHECK(lengths[s] >= 1 && lengths[s] <= config_.max_position_embeddings, "Encoder: sequence ", s,
                 " has length ", lengths[s], ", must be 1..", config_.max_position_embeddings,
                 " (max_position_embeddings)");
    tokens += lengths[s];  // no overflow: each length is at most 2^31
    LUTMUL_CHECK(tokens <= (int64_t{1} << 40), "Encoder: the batch has too many tokens (", tokens, ")");
  }
}

void Encoder::check_batch(const int32_t* ids, const int64_t* lengths, int64_t sequences, int64_t& tokens) const {
  check_lengths(lengths, sequences, tokens);
  LUTMUL_CHECK(tokens == 0 || ids != nullptr, "Encoder: ids is null");
  for (int64_t t = 0, s = 0, start = 0; t < tokens; ++t) {
    while (t >= start + lengths[s]) start += lengths[s++];
    LUTMUL_CHECK(ids[t] >= 0 && ids[t] < config_.vocab_size, "Encoder: token id ", ids[t], " at position ", t,
                 " (sequence ", s, ", token ", t - start, ") is outside the vocabulary [0, ", config_.vocab_size, ")");
  }
}

struct Encoder::Tap {
  int block = 0;
  int layer = 0;  // index into linear_names()
  float* out = nullptr;
};

bool Encoder::forward(const int32_t* ids, const int64_t* lengths, int64_t sequences, int64_t tokens, Workspace& ws,
                      const Tap* tap, int start_block, const float* start_hidden) const {
  const kernels::RuntimeKernelTable& k = detail::active_kernels().runtime;
  const int64_t h = config_.hidden_size, inter = config_.intermediate_size, heads = config_.num_attention_heads;
  const int64_t d = config_.head_dim();
  const float eps = static_cast<float>(config_.layer_norm_eps);

  int64_t longest = 0;
  grow(ws.starts, sequences + 1);
  grow(ws.positions, tokens);
  ws.starts[0] = 0;
  for (int64_t s = 0; s < sequences; ++s) {
    ws.starts[s + 1] = ws.starts[s] + lengths[s];
    longest = std::max(longest, lengths[s]);
    for (int64_t i = 0; i < lengths[s]; ++i) ws.positions[ws.starts[s] + i] = static_cast<int32_t>(i);
  }
  grow(ws.hidden, tokens * h);
  // q/k/v and the attention context live only until the output projection, the feed-forward
  // activations only after it: they share one buffer (6H floats a token for BERT, not 10H).
  grow(ws.shared, tokens * std::max(4 * h, inter));
  grow(ws.projected, tokens * h);
  // Read once: another caller may change the thread count while this call runs, and the
  // attention scratch must cover every thread the attention loop below starts.
  const int threads_now = num_threads();
  const int64_t scratch_per_thread = kernels::attention_scratch_floats(longest, d);
  grow(ws.attention_scratch, scratch_per_thread * threads_now);
  float* hidden = ws.hidden.data();

  if (start_hidden != nullptr) {
    // The caller's rows: checked here, since the products do not check theirs (product()).
    const MatrixView given = MatrixView::row_major(start_hidden, tokens, h);
    if (!detail::rows_finite_on_threads(given, threads_now)) check_finite(given, "Encoder: hidden");
    std::copy_n(start_hidden, tokens * h, hidden);
  } else {  // from the tokens: only an encoder holding the embeddings gets here (require_blocks)
    kernels::EmbeddingArgs embedding;
    embedding.ids = ids;
    embedding.positions = ws.positions.data();
    embedding.word = weights_->word.data();
    embedding.position = weights_->position.data();
    embedding.type0 = weights_->token_type.data();  // token type 0 for every token
    embedding.gamma = weights_->norm_gamma.data();
    embedding.beta = weights_->norm_beta.data();
    embedding.eps = eps;
    embedding.h = h;
    embedding.out = hidden;
    parallel_ranges(tokens, 4, [&](int64_t b, int64_t e) { k.embedding(embedding, b, e); });
  }

  const MatrixView hidden_view = MatrixView::row_major(hidden, tokens, h);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  // True (and the forward ends) when `tap` asks for the rows of layer `layer` of this block.
  int block_index = 0;
  // The products skip their own finite checks (product() above), so the tapped rows are
  // checked here, as the last hidden states are at the end.
  const auto tapped = [&](int layer, const float* rows, int64_t width) {
    if (tap == nullptr || tap->block != block_index || tap->layer != layer) return false;
    std::copy_n(rows, tokens * width, tap->out);
    check_rows_finite(tap->out, width, lengths, sequences, tokens,
                      "inputs of block " + std::to_string(block_index) + "'s " + linear_names()[static_cast<size_t>(layer)],
                      "");
    return true;
  };
  for (const std::shared_ptr<const Block>& block_ptr : blocks_) {
    if (block_index < start_block) {
      ++block_index;
      continue;
    }
    // Before the block is read: a stage's forward stops at the first block it does not hold.
    if (tapped(0, hidden, h) || tapped(1, hidden, h) || tapped(2, hidden, h)) return false;
    const Block& block = *block_ptr;
    float* qkv = ws.shared.data();  // tokens × 3H
    if (block.qkv) {
      product(*block.qkv, hidden_view, qkv, 3 * h);
    } else {
      product(*block.query, hidden_view, qkv, 3 * h);
      product(*block.key, hidden_view, qkv + h, 3 * h);
      product(*block.value, hidden_view, qkv + 2 * h, 3 * h);
    }
    // Attention: (sequence, head) pairs, handed out one at a time (lengths differ).
    const int64_t pairs = sequences * heads;
    const int threads = static_cast<int>(std::min<int64_t>(threads_now, pairs));
    float* context = qkv + tokens * 3 * h;  // tokens × H, after q/k/v
    float* scratch_all = ws.attention_scratch.data();
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
    for (int64_t pair = 0; pair < pairs; ++pair) {
      const int64_t s = pair / heads, head = pair % heads;
      const int64_t start = ws.starts[s];
      kernels::AttentionArgs a;
      a.q = qkv + start * 3 * h + head * d;
      a.k = a.q + h;
      a.v = a.q + 2 * h;
      a.ld_qkv = 3 * h;
      a.length = lengths[s];
      a.d = d;
      a.scale = scale;
      a.context = context + start * h + head * d;
      a.ld_context = h;
      a.scratch = scratch_all + scratch_per_thread * omp_get_thread_num();
      k.attention(a);
    }
    if (tapped(3, context, h)) return false;
    float* projected = ws.projected.data();
    kernels::ResidualNormArgs norm;
    // A layer that fuses epilogues adds its output into the residual as it stores it; the
    // LayerNorm pass then adds a row of zeros (the same bits: x + r is r + x).
    const auto project_into_residual = [&](const LinearOperator& op, const MatrixView& input) {
      if (op.fuses_epilogue()) {
        op.forward_with(input, hidden, h, Epilogue{Epilogue::Activation::none, true});
        std::fill_n(projected, h, 0.f);
        norm.x = projected;
        norm.ldx = 0;
      } else {
        product(op, input, projected, h);
        norm.x = projected;
        norm.ldx = h;
      }
    };
    project_into_residual(*block.attn_out, MatrixView::row_major(context, tokens, h));
    norm.gamma = block.attn_norm_gamma.data();
    norm.beta = block.attn_norm_beta.data();
    norm.eps = eps;
    norm.h = h;
    norm.residual = hidden;
    parallel_ranges(tokens, 4, [&](int64_t b, int64_t e) { k.residual_norm(norm, b, e); });

    if (tapped(4, hidden, h)) return false;
    float* intermediate = ws.shared.data();  // q/k/v and the context are no longer needed
    const auto* bf16_in = dynamic_cast<const Bf16Linear*>(block.ffn_in.get());
    const auto* bf16_out = dynamic_cast<const Bf16Linear*>(block.ffn_out.get());
    const bool tapping_activations = tap != nullptr && tap->block == block_index && tap->layer == 5;
    if (bf16_in && bf16_out && bf16_in->fuses_epilogue() && bf16_out->fuses_epilogue() && !tapping_activations) {
      // bf16 on AMX: the activations go from one product to the next in bfloat16, rounded
      // once as the first stores them (the second would round them to the same bits).
      uint16_t* activations = reinterpret_cast<uint16_t*>(intermediate);
      bf16_in->forward_bf16_out(hidden_view, activations, inter, Epilogue{Epilogue::Activation::gelu, false});
      bf16_out->forward_bf16_in(activations, tokens, hidden, h, Epilogue{Epilogue::Activation::none, true});
      std::fill_n(projected, h, 0.f);
      norm.x = projected;
      norm.ldx = 0;
    } else {
      if (block.ffn_in->fuses_epilogue()) {  // GELU as the layer stores its output
        block.ffn_in->forward_with(hidden_view, intermediate, inter, Epilogue{Epilogue::Activation::gelu, false});
      } else {
        product(*block.ffn_in, hidden_view, intermediate, inter);
        parallel_ranges(tokens, 2, [&](int64_t b, int64_t e) { k.gelu(intermediate, inter, inter, nullptr, b, e); });
      }
      if (tapped(5, intermediate, inter)) return false;
      project_into_residual(*block.ffn_out, MatrixView::row_major(intermediate, tokens, inter));
    }
    norm.gamma = block.out_norm_gamma.data();
    norm.beta = block.out_norm_beta.data();
    parallel_ranges(tokens, 4, [&](int64_t b, int64_t e) { k.residual_norm(norm, b, e); });
    ++block_index;
  }
  check_rows_finite(ws.hidden.data(), config_.hidden_size, lengths, sequences, tokens, "hidden states",
                    " after the last block");
  return true;
}

void Encoder::check_rows_finite(const float* rows, int64_t width, const int64_t* lengths, int64_t sequences,
                                int64_t tokens, const std::string& what, const char* where) const {
  // The operators leave an overflow of finite inputs to their caller (the contract in
  // linear_operator.h); here the caller is the user. A layer whose outputs pass float's range
  // makes its rows' LayerNorm NaN and attention spreads that over the sequence, so the last
  // hidden states show every such failure: one read of them, against a NaN embedding returned.
  const MatrixView view = MatrixView::row_major(rows, tokens, width);
  if (detail::rows_finite_on_threads(view, num_threads())) return;
  int64_t s = 0;
  for (int64_t start = 0; s < sequences; start += lengths[s++])
    if (!detail::rows_finite(view, start, lengths[s])) break;
  detail::throw_error("Encoder: the forward overflowed: the ", what, " of sequence ", s, " are not finite", where,
                      " (a layer's outputs passed float's range: its weights or its operator's approximation are "
                      "unfit for these inputs)");
}

void Encoder::hidden_states(const int32_t* ids, const int64_t* lengths, int64_t sequences, float* out) const {
  int64_t tokens = 0;
  check_batch(ids, lengths, sequences, tokens);
  LUTMUL_CHECK(tokens == 0 || out != nullptr, "Encoder::hidden_states: out is null");
  require_blocks(0, static_cast<int>(blocks_.size()), "hidden_states", true);
  if (tokens == 0) return;
  WorkspacePool::Lease lease = workspaces_->take();
  Workspace& ws = *lease;
  forward(ids, lengths, sequences, tokens, ws);
  std::copy_n(ws.hidden.data(), tokens * config_.hidden_size, out);
}

void Encoder::layer_inputs(const int32_t* ids, const int64_t* lengths, int64_t sequences, int block,
                           const std::string& name, float* out) const {
  block_at(block, name);  // checks both
  int64_t tokens = 0;
  check_batch(ids, lengths, sequences, tokens);
  LUTMUL_CHECK(tokens == 0 || out != nullptr, "Encoder::layer_inputs: out is null");
  const std::vector<std::string>& names = linear_names();
  Tap tap;
  tap.block = block;
  tap.layer = static_cast<int>(std::find(names.begin(), names.end(), name) - names.begin());
  require_blocks(0, block + 1, "layer_inputs", true);
  if (tokens == 0) return;
  tap.out = out;
  WorkspacePool::Lease lease = workspaces_->take();
  forward(ids, lengths, sequences, tokens, *lease, &tap);
}

void Encoder::embed(const int32_t* ids, const int64_t* lengths, int64_t sequences, float* out) const {
  int64_t tokens = 0;
  check_batch(ids, lengths, sequences, tokens);
  LUTMUL_CHECK(sequences == 0 || out != nullptr, "Encoder::embed: out is null");
  require_blocks(0, static_cast<int>(blocks_.size()), "embed", true);
  if (tokens == 0) return;
  WorkspacePool::Lease lease = workspaces_->take();
  Workspace& ws = *lease;
  forward(ids, lengths, sequences, tokens, ws);
  pool(lengths, sequences, ws, out);
}

void Encoder::embed_from_block(int block, const float* hidden, const int64_t* lengths, int64_t sequences,
                               float* out) const {
  block_at(block, "query");  // checks the block
  int64_t tokens = 0;
  check_lengths(lengths, sequences, tokens);
  LUTMUL_CHECK(tokens == 0 || (hidden != nullptr && out != nullptr), "Encoder::embed_from_block: hidden or out is null");
  require_blocks(block, static_cast<int>(blocks_.size()), "embed_from_block");
  if (tokens == 0) return;
  WorkspacePool::Lease lease = workspaces_->take();
  Workspace& ws = *lease;
  forward(nullptr, lengths, sequences, tokens, ws, nullptr, block, hidden);
  pool(lengths, sequences, ws, out);
}

void Encoder::hidden_through_blocks(int first, int last, const float* hidden, const int64_t* lengths,
                                    int64_t sequences, float* out) const {
  const int blocks = static_cast<int>(blocks_.size());
  LUTMUL_CHECK(first >= 0 && first < last && last <= blocks, "Encoder::hidden_through_blocks: blocks ", first, "..",
               last, " are not a range of this encoder's ", blocks, " blocks (0 <= first < last <= ", blocks, ")");
  int64_t tokens = 0;
  check_lengths(lengths, sequences, tokens);
  LUTMUL_CHECK(tokens == 0 || (hidden != nullptr && out != nullptr),
               "Encoder::hidden_through_blocks: hidden or out is null");
  require_blocks(first, last, "hidden_through_blocks");
  if (tokens == 0) return;
  WorkspacePool::Lease lease = workspaces_->take();
  Workspace& ws = *lease;
  if (last < blocks) {  // stop where block `last` would read its input
    Tap tap;
    tap.block = last;
    tap.layer = 0;
    tap.out = out;
    forward(nullptr, lengths, sequences, tokens, ws, &tap, first, hidden);
    return;
  }
  forward(nullptr, lengths, sequences, tokens, ws, nullptr, first, hidden);  // checks the last hidden states
  std::copy_n(ws.hidden.data(), tokens * config_.hidden_size, out);
}

void Encoder::pool(const int64_t* lengths, int64_t sequences, const Workspace& ws, float* out) const {
  const kernels::PoolFn pool_fn = detail::active_kernels().runtime.pool;
  const int64_t h = config_.hidden_size;
  const bool mean = pooling_ == Pooling::mean;
  const float* hidden = ws.hidden.data();
  const int64_t* starts = ws.starts.data();
  parallel_ranges(sequences, 8, [&](int64_t b, int64_t e) {
    for (int64_t s = b; s < e; ++s) pool_fn(hidden + starts[s] * h, lengths[s], h, mean, normalize_, out + s * h);
  });
}

}  // namespace lutmul::runtime
