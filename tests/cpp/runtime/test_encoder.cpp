// The encoder end to end on small random BERTs written by the test: against an independent
// double-precision forward, ragged batches against single sequences, concurrent callers, and
// replaced layers.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "lutmul/runtime.h"
#include "runtime/reference_bert.h"
#include "runtime/tiny_bert.h"
#include "test_util.h"

namespace lutmul::testing {
namespace {

using runtime::Encoder;

using Batch = RaggedBatch;

// max |a − b| over max |b|, row by row: each row must be within `tolerance`.
void expect_rows_near(const float* actual, const Rows& expected, double tolerance, const std::string& what) {
  for (size_t i = 0; i < expected.size(); ++i) {
    double diff = 0.0, scale = 0.0;
    for (size_t j = 0; j < expected[i].size(); ++j) {
      diff = std::max(diff, std::abs(actual[i * expected[i].size() + j] - expected[i][j]));
      scale = std::max(scale, std::abs(expected[i][j]));
    }
    EXPECT_LE(diff, tolerance * scale) << what << ", row " << i;
  }
}

TEST(Encoder, ClsModelMatchesTheDoubleReference) {
  TinyBertSpec spec;  // hidden 48, 4 heads, 2 layers, intermediate 80, 2 token types, CLS
  const TinyBert bert = write_tiny_bert(spec, "cls");
  const auto encoder = Encoder::load(bert.folder);
  EXPECT_EQ(encoder->pooling(), runtime::Pooling::cls);
  EXPECT_FALSE(encoder->normalize());
  EXPECT_EQ(encoder->max_sequence_length(), spec.positions);
  const Batch batch = random_batch({1, 5, 17, spec.positions, 2}, spec.vocab, 7);
  std::vector<float> hidden(batch.ids.size() * static_cast<size_t>(spec.hidden));
  encoder->hidden_states(batch.ids.data(), batch.lengths.data(), 5, hidden.data());
  std::vector<float> embeddings(5 * static_cast<size_t>(spec.hidden));
  encoder->embed(batch.ids.data(), batch.lengths.data(), 5, embeddings.data());
  size_t row = 0;
  for (size_t s = 0; s < 5; ++s) {
    const Rows expected = reference_hidden_states(bert, batch.sequence(s));
    expect_rows_near(hidden.data() + row * static_cast<size_t>(spec.hidden), expected, 1e-4, "sequence " + std::to_string(s));
    row += expected.size();
    expect_rows_near(embeddings.data() + s * static_cast<size_t>(spec.hidden), {reference_embedding(bert, batch.sequence(s))},
                     1e-4, "embedding " + std::to_string(s));
  }
}

TEST(Encoder, MeanNormalizedModelWithPrefixedNamesMatchesTheDoubleReference) {
  TinyBertSpec spec;
  spec.hidden = 32, spec.heads = 2, spec.layers = 3, spec.intermediate = 64, spec.type_vocab = 1;
  spec.cls = false, spec.normalize = true, spec.prefix = "bert.", spec.seed = 3, spec.eps = 1e-5;
  const TinyBert bert = write_tiny_bert(spec, "mean");
  const auto encoder = Encoder::load(bert.folder);
  EXPECT_EQ(encoder->pooling(), runtime::Pooling::mean);
  EXPECT_TRUE(encoder->normalize());
  const Batch batch = random_batch({3, 1, 30, 12}, spec.vocab, 8);
  std::vector<float> embeddings(4 * static_cast<size_t>(spec.hidden));
  encoder->embed(batch.ids.data(), batch.lengths.data(), 4, embeddings.data());
  for (size_t s = 0; s < 4; ++s)
    expect_rows_near(embeddings.data() + s * static_cast<size_t>(spec.hidden), {reference_embedding(bert, batch.sequence(s))},
                     1e-4, "embedding " + std::to_string(s));
}

TEST(Encoder, HalfAndBfloat16WeightsAreWidened) {
  for (const char* dtype : {"F16", "BF16"}) {
    TinyBertSpec spec;
    spec.dtype = dtype;
    const TinyBert bert = write_tiny_bert(spec, std::string("half_") + dtype);
    const auto encoder = Encoder::load(bert.folder);
    const Batch batch = random_batch({7}, spec.vocab, 11);
    std::vector<float> embedding(static_cast<size_t>(spec.hidden));
    encoder->embed(batch.ids.data(), batch.lengths.data(), 1, embedding.data());
    expect_rows_near(embedding.data(), {reference_embedding(bert, batch.ids)}, 1e-4, dtype);
  }
}

TEST(Encoder, WithoutModulesJsonPoolsTheMeanUnnormalised) {
  TinyBertSpec spec;
  spec.modules = false, spec.cls = false, spec.normalize = false;
  const TinyBert bert = write_tiny_bert(spec, "plain");
  const auto encoder = Encoder::load(bert.folder);
  EXPECT_EQ(encoder->pooling(), runtime::Pooling::mean);
  EXPECT_FALSE(encoder->normalize());
  const Batch batch = random_batch({9}, spec.vocab, 9);
  std::vector<float> embedding(static_cast<size_t>(spec.hidden));
  encoder->embed(batch.ids.data(), batch.lengths.data(), 1, embedding.data());
  expect_rows_near(embedding.data(), {reference_embedding(bert, batch.ids)}, 1e-4, "embedding");
}

TEST(Encoder, RaggedBatchEqualsEachSequenceAlone) {
  TinyBertSpec spec;
  spec.cls = false, spec.normalize = true;
  const TinyBert bert = write_tiny_bert(spec, "ragged");
  const auto encoder = Encoder::load(bert.folder);
  const std::vector<int64_t> lengths = {4, 1, 33, 16, 7, 40, 2};
  const Batch batch = random_batch(lengths, spec.vocab, 10);
  const size_t h = static_cast<size_t>(spec.hidden), n = lengths.size();
  std::vector<float> together(n * h);
  encoder->embed(batch.ids.data(), batch.lengths.data(), static_cast<int64_t>(n), together.data());
  for (size_t s = 0; s < n; ++s) {
    const std::vector<int32_t> ids = batch.sequence(s);
    std::vector<float> alone(h);
    encoder->embed(ids.data(), &lengths[s], 1, alone.data());
    for (size_t j = 0; j < h; ++j) EXPECT_NEAR(together[s * h + j], alone[j], 1e-6) << "sequence " << s << ", value " << j;
  }
}

TEST(Encoder, ConcurrentCallersGetTheSingleThreadedResult) {
  TinyBertSpec spec;
  const TinyBert bert = write_tiny_bert(spec, "threads");
  const auto encoder = Encoder::load(bert.folder);
  const size_t h = static_cast<size_t>(spec.hidden);
  std::vector<Batch> batches;
  std::vector<std::vector<float>> expected;
  for (uint64_t t = 0; t < 8; ++t) {
    batches.push_back(random_batch({static_cast<int64_t>(3 + t), 20, static_cast<int64_t>(1 + 4 * t)}, spec.vocab, 20 + t));
    expected.emplace_back(3 * h);
    encoder->embed(batches[t].ids.data(), batches[t].lengths.data(), 3, expected[t].data());
  }
  std::vector<std::vector<float>> actual(8, std::vector<float>(3 * h));
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int repeat = 0; repeat < 5; ++repeat)
        encoder->embed(batches[t].ids.data(), batches[t].lengths.data(), 3, actual[t].data());
    });
  for (std::thread& thread : threads) thread.join();
  for (size_t t = 0; t < 8; ++t) EXPECT_EQ(actual[t], expected[t]) << "thread " << t;
}

TEST(Encoder, ReplacedLayersAreUsedAndTheOriginalIsUnchanged) {
  TinyBertSpec spec;
  const TinyBert bert = write_tiny_bert(spec, "replace");
  const auto encoder = Encoder::load(bert.folder);
  const std::vector<runtime::LinearSlot> slots = encoder->linear_layers();
  ASSERT_EQ(slots.size(), 12u);
  EXPECT_EQ(slots[0].block, 0);
  EXPECT_EQ(slots[0].name, "query");
  EXPECT_EQ(slots[11].block, 1);
  EXPECT_EQ(slots[11].name, "ffn_out");
  EXPECT_EQ(encoder->linear(1, "ffn_in")->output_dim(), spec.intermediate);

  const Batch batch = random_batch({6, 11}, spec.vocab, 30);
  const size_t h = static_cast<size_t>(spec.hidden);
  std::vector<float> original(2 * h), replaced(2 * h), again(2 * h);
  encoder->embed(batch.ids.data(), batch.lengths.data(), 2, original.data());

  // Query of block 1 by a layer that zeroes its weights: only the bias is left, which changes
  // the attention pattern (not the fused product any more).
  const std::vector<float> zero(h * h, 0.f);
  const std::vector<float>& bias = bert.tensors.at("encoder.layer.1.attention.self.query.bias");
  auto zero_query = std::make_shared<DenseLinear>(MatrixView::row_major(zero.data(), spec.hidden, spec.hidden), bias.data());
  const auto changed = encoder->with_linear(1, "query", zero_query);
  EXPECT_EQ(changed->linear(1, "query"), zero_query);
  EXPECT_EQ(changed->linear(0, "query"), encoder->linear(0, "query"));
  changed->embed(batch.ids.data(), batch.lengths.data(), 2, replaced.data());
  encoder->embed(batch.ids.data(), batch.lengths.data(), 2, again.data());
  EXPECT_EQ(again, original);
  double diff = 0.0;
  for (size_t j = 0; j < 2 * h; ++j) diff = std::max(diff, static_cast<double>(std::abs(replaced[j] - original[j])));
  EXPECT_GT(diff, 1e-3);

  // The same weights as another kind (int8, not fusable) give nearly the same embeddings.
  auto as_int8 = std::make_shared<Int8Linear>(
      MatrixView::col_major(bert.tensors.at("encoder.layer.0.attention.self.key.weight").data(), spec.hidden, spec.hidden),
      bert.tensors.at("encoder.layer.0.attention.self.key.bias").data());
  const auto quantised = encoder->with_linear(0, "key", as_int8);
  quantised->embed(batch.ids.data(), batch.lengths.data(), 2, replaced.data());
  for (size_t j = 0; j < 2 * h; ++j) EXPECT_NEAR(replaced[j], original[j], 0.05) << j;

  EXPECT_THROW(encoder->with_linear(0, "ffn_in", zero_query), Error);  // 48 x 48 for 48 x 80
  EXPECT_THROW(encoder->with_linear(2, "query", zero_query), Error);
  EXPECT_THROW(encoder->with_linear(0, "dense", zero_query), Error);
  EXPECT_THROW(encoder->with_linear(0, "query", nullptr), Error);
  EXPECT_THROW(encoder->linear(-1, "query"), Error);
}

// An operator that hides whether the one it wraps fuses epilogues: the runtime's unfused path.
class Unfused final : public LinearOperator {
 public:
  explicit Unfused(std::shared_ptr<const LinearOperator> inner) : inner_(std::move(inner)) {}
  std::string kind() const override { return inner_->kind(); }
  int64_t input_dim() const override { return inner_->input_dim(); }
  int64_t output_dim() const override { return inner_->output_dim(); }
  void forward(const MatrixView& X, float* Y, int64_t ldy) const override { inner_->forward(X, Y, ldy); }
  using LinearOperator::forward;
  int64_t bytes() const override { return inner_->bytes(); }
  double multiply_adds_per_row() const override { return inner_->multiply_adds_per_row(); }

 private:
  std::shared_ptr<const LinearOperator> inner_;
};

// MADDNESS layers add into the residual and apply GELU as they store their outputs: the
// embeddings are the unfused path's, bit for bit without GELU, to float rounding with it.
TEST(Encoder, FusedEpiloguesGiveTheUnfusedEmbeddings) {
  TinyBertSpec spec;
  const TinyBert bert = write_tiny_bert(spec, "fused");
  const auto encoder = Encoder::load(bert.folder);
  const Batch batch = random_batch({6, 11, 30}, spec.vocab, 31);
  const size_t h = static_cast<size_t>(spec.hidden);
  // A MADDNESS layer with the layer's own weights (stored out × in) on random calibration rows.
  const auto maddness = [&](const std::string& name, int64_t in, int64_t out) {
    const std::vector<float> rows = uniform(512, in, -1.f, 1.f, static_cast<uint64_t>(in * 7 + out));
    MaddnessConfig config;
    config.ncodebooks = 8;
    return std::make_shared<MaddnessLinear>(MatrixView::col_major(bert.tensors.at(name + ".weight").data(), in, out),
                                            bert.tensors.at(name + ".bias").data(),
                                            MatrixView::row_major(rows.data(), 512, in), config);
  };
  struct Layer {
    int block;
    const char* slot;
    std::string tensor;
    int64_t in, out;
  };
  const std::vector<Layer> layers = {
      {0, "attn_out", "encoder.layer.0.attention.output.dense", spec.hidden, spec.hidden},
      {1, "ffn_out", "encoder.layer.1.output.dense", spec.intermediate, spec.hidden},
      {1, "ffn_in", "encoder.layer.1.intermediate.dense", spec.hidden, spec.intermediate}};
  std::shared_ptr<const Encoder> fused = encoder, unfused = encoder;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = layers[i];
    const auto op = maddness(l.tensor, l.in, l.out);
    ASSERT_TRUE(op->fuses_epilogue());
    fused = fused->with_linear(l.block, l.slot, op);
    unfused = unfused->with_linear(l.block, l.slot, std::make_shared<Unfused>(op));
    std::vector<float> a(3 * h), b(3 * h);
    fused->embed(batch.ids.data(), batch.lengths.data(), 3, a.data());
    unfused->embed(batch.ids.data(), batch.lengths.data(), 3, b.data());
    if (i < 2) {  // residual additions only
      EXPECT_EQ(a, b) << l.slot;
    } else {
      for (size_t j = 0; j < a.size(); ++j) EXPECT_NEAR(a[j], b[j], 2e-6) << l.slot << " " << j;
    }
  }
}

TEST(Encoder, DescribeNamesEveryLayerAndTheTotal) {
  TinyBertSpec spec;
  const TinyBert bert = write_tiny_bert(spec, "describe");
  const auto encoder = Encoder::load(bert.folder);
  const std::string text = encoder->describe();
  EXPECT_NE(text.find("block 1 ffn_out: dense 80 x 48, " + std::to_string((80 * 48 + 48) * 4) + " bytes"), std::string::npos) << text;
  EXPECT_NE(text.find("pooling cls"), std::string::npos) << text;
  EXPECT_NE(text.find("total " + std::to_string(encoder->bytes()) + " bytes"), std::string::npos) << text;
}

}  // namespace
}  // namespace lutmul::testing
