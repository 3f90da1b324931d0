#include "fuzz_util.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "lutmul/core/error.h"
#include "lutmul/operators/lora_linear.h"

namespace lutmul::fuzz {
namespace {

// Sizes above this are legal but not run: the fuzzer's memory limit is 2 GB and a file of a
// few bytes can name an operator of 2^31 inputs whose weights are all pruned away.
constexpr int64_t kMaxRunElements = int64_t{1} << 20;
constexpr int64_t kRows = 3;

// Rows with a spread of values, the same every run.
std::vector<float> sample_rows(int64_t cols) {
  std::vector<float> x(static_cast<size_t>(kRows * cols));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(i * 7919 % 17) - 8) * 0.25f;
  return x;
}

bool small_enough(int64_t k, int64_t m) { return k <= kMaxRunElements / kRows && m <= kMaxRunElements / kRows; }

}  // namespace

std::string join_with_nul(const std::vector<std::string>& parts) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? std::string(1, '\0') : std::string()) + parts[i];
  return out;
}

void rejected(const std::exception& error) {
  static const bool verbose = std::getenv("LUTMUL_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "rejected: %s\n", error.what());
}

void fail(const char* what) {
  std::fprintf(stderr, "fuzz check failed: %s\n", what);
  std::abort();
}

void exercise(const LinearOperator& op) {
  const int64_t k = op.input_dim(), m = op.output_dim();
  if (k < 1 || m < 1) fail("a loaded operator has no inputs or no outputs");
  if (small_enough(k, m)) {
    const std::vector<float> x = sample_rows(k);
    std::vector<float> y(static_cast<size_t>(kRows * m));
    const MatrixView X = MatrixView::row_major(x.data(), kRows, k);
    // Finite weights can still be large enough that Y overflows: forward then throws by
    // contract (linear_operator.h), which is what must happen, rather than return infinities.
    try {
      op.forward(X, y.data(), m);
      if (const auto* lora = dynamic_cast<const LoraLinear*>(&op)) {
        std::vector<int32_t> ids = {LoraLinear::kNoAdapter};
        for (const std::string& name : lora->adapter_names()) ids.push_back(lora->adapter_id(name));
        ids.resize(kRows, ids.back());
        lora->forward(X, ids.data(), y.data(), m);
      }
    } catch (const Error& e) {
      rejected(e);
    }
  }
  const std::vector<uint8_t> saved = op.serialize();
  if (LinearOperator::deserialize(saved.data(), saved.size())->serialize() != saved)
    fail("an operator read back from its own save saves different bytes");
}

void exercise(const Maddness& model) {
  const int64_t d = model.input_dim(), m = model.output_dim();
  if (small_enough(d, m)) {
    const std::vector<float> x = sample_rows(d);
    const MatrixView A = MatrixView::row_major(x.data(), kRows, d);
    const EncodedRows codes = model.encode(A);
    if (m > 0) {
      std::vector<float> y(static_cast<size_t>(kRows * m));
      model.scan(codes, y.data(), m);
      model.matmul(A, y.data(), m);
    }
  }
  const std::vector<uint8_t> saved = model.serialize();
  if (Maddness::deserialize(saved.data(), saved.size()).serialize() != saved)
    fail("a model read back from its own save saves different bytes");
}

}  // namespace lutmul::fuzz
