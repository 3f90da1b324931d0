// Test helper: a straightforward double-precision BERT forward over one sequence, written
// from the architecture's definition and sharing no code with the runtime.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "runtime/tiny_bert.h"

namespace lutmul::testing {

using Rows = std::vector<std::vector<double>>;

inline void reference_layer_norm(std::vector<double>& x, const std::vector<float>& gamma, const std::vector<float>& beta,
                                 double eps) {
  double mean = 0.0, var = 0.0;
  for (double v : x) mean += v;
  mean /= static_cast<double>(x.size());
  for (double v : x) var += (v - mean) * (v - mean);
  var /= static_cast<double>(x.size());
  for (size_t j = 0; j < x.size(); ++j) x[j] = (x[j] - mean) / std::sqrt(var + eps) * gamma[j] + beta[j];
}

// y = x·Wᵀ + b for a Hugging Face weight (out × in).
inline Rows reference_linear(const Rows& x, const std::vector<float>& w, const std::vector<float>& b) {
  const size_t out = b.size(), in = x[0].size();
  Rows y(x.size(), std::vector<double>(out));
  for (size_t i = 0; i < x.size(); ++i)
    for (size_t o = 0; o < out; ++o) {
      double sum = b[o];
      for (size_t c = 0; c < in; ++c) sum += x[i][c] * w[o * in + c];
      y[i][o] = sum;
    }
  return y;
}

// Last hidden states of one sequence of token ids.
inline Rows reference_hidden_states(const TinyBert& bert, const std::vector<int32_t>& ids) {
  const TinyBertSpec& s = bert.spec;
  const auto& t = bert.tensors;
  const size_t n = ids.size(), h = static_cast<size_t>(s.hidden);
  Rows x(n, std::vector<double>(h));
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < h; ++j)
      x[i][j] = static_cast<double>(t.at("embeddings.word_embeddings.weight")[ids[i] * h + j]) +
                t.at("embeddings.position_embeddings.weight")[i * h + j] +
                t.at("embeddings.token_type_embeddings.weight")[j];
    reference_layer_norm(x[i], t.at("embeddings.LayerNorm.weight"), t.at("embeddings.LayerNorm.bias"), s.eps);
  }
  const size_t heads = static_cast<size_t>(s.heads), d = h / heads;
  for (int64_t b = 0; b < s.layers; ++b) {
    const std::string p = "encoder.layer." + std::to_string(b) + ".";
    const auto lin = [&](const Rows& in, const std::string& name) {
      return reference_linear(in, t.at(p + name + ".weight"), t.at(p + name + ".bias"));
    };
    const Rows q = lin(x, "attention.self.query"), k = lin(x, "attention.self.key"), v = lin(x, "attention.self.value");
    Rows context(n, std::vector<double>(h, 0.0));
    for (size_t head = 0; head < heads; ++head)
      for (size_t i = 0; i < n; ++i) {
        std::vector<double> score(n);
        double top = -1e300, total = 0.0;
        for (size_t j = 0; j < n; ++j) {
          double dot = 0.0;
          for (size_t c = 0; c < d; ++c) dot += q[i][head * d + c] * k[j][head * d + c];
          score[j] = dot / std::sqrt(static_cast<double>(d));
          top = std::max(top, score[j]);
        }
        for (size_t j = 0; j < n; ++j) total += score[j] = std::exp(score[j] - top);
        for (size_t j = 0; j < n; ++j)
          for (size_t c = 0; c < d; ++c) context[i][head * d + c] += score[j] / total * v[j][head * d + c];
      }
    Rows attn = lin(context, "attention.output.dense");
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < h; ++j) attn[i][j] += x[i][j];
      reference_layer_norm(attn[i], t.at(p + "attention.output.LayerNorm.weight"), t.at(p + "attention.output.LayerNorm.bias"), s.eps);
    }
    Rows inter = lin(attn, "intermediate.dense");
    for (auto& row : inter)
      for (double& u : row) u = 0.5 * u * (1.0 + std::erf(u / std::sqrt(2.0)));
    Rows out = lin(inter, "output.dense");
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < h; ++j) out[i][j] += attn[i][j];
      reference_layer_norm(out[i], t.at(p + "output.LayerNorm.weight"), t.at(p + "output.LayerNorm.bias"), s.eps);
    }
    x = out;
  }
  return x;
}

// The pooled embedding of one sequence, as the spec's pooling and normalisation say.
inline std::vector<double> reference_embedding(const TinyBert& bert, const std::vector<int32_t>& ids) {
  const Rows x = reference_hidden_states(bert, ids);
  std::vector<double> e(x[0].size(), 0.0);
  for (size_t i = 0; i < (bert.spec.cls ? 1 : x.size()); ++i)
    for (size_t j = 0; j < e.size(); ++j) e[j] += x[i][j];
  if (!bert.spec.cls)
    for (double& v : e) v /= static_cast<double>(x.size());
  if (bert.spec.normalize) {
    double norm = 0.0;
    for (double v : e) norm += v * v;
    for (double& v : e) v /= std::sqrt(norm);
  }
  return e;
}

}  // namespace lutmul::testing
