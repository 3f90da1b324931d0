// Operator files: the library's container (src/file_format.h) with magic "LUTMULOP" around
// the operator's kind and its own payload; loading dispatches on the kind.
#include <functional>
#include <map>

#include "file_format.h"
#include "lutmul/channel_pruned_linear.h"
#include "lutmul/dense_linear.h"
#include "lutmul/error.h"
#include "lutmul/int8_linear.h"
#include "lutmul/linear_operator.h"
#include "lutmul/lora_linear.h"
#include "lutmul/lowrank_linear.h"
#include "lutmul/maddness_linear.h"
#include "lutmul/sparse24_linear.h"
#include "lutmul/sparse_linear.h"

namespace lutmul {
namespace {

constexpr detail::Magic kMagic = {'L', 'U', 'T', 'M', 'U', 'L', 'O', 'P'};
constexpr uint32_t kFormatVersion = 1;
constexpr uint64_t kMaxKindLength = 64;

using Loader = std::function<std::unique_ptr<LinearOperator>(const uint8_t*, size_t)>;

const std::map<std::string, Loader>& loaders() {
  static const std::map<std::string, Loader> table = {
      {"dense", [](const uint8_t* d, size_t n) { return DenseLinear::from_payload(d, n); }},
      {"int8", [](const uint8_t* d, size_t n) { return Int8Linear::from_payload(d, n); }},
      {"sparse", [](const uint8_t* d, size_t n) { return SparseLinear::from_payload(d, n); }},
      {"sparse24", [](const uint8_t* d, size_t n) { return Sparse24Linear::from_payload(d, n); }},
      {"channel_pruned", [](const uint8_t* d, size_t n) { return ChannelPrunedLinear::from_payload(d, n); }},
      {"maddness", [](const uint8_t* d, size_t n) { return MaddnessLinear::from_payload(d, n); }},
      {"low_rank", [](const uint8_t* d, size_t n) { return LowRankLinear::from_payload(d, n); }},
      {"lora", [](const uint8_t* d, size_t n) { return LoraLinear::from_payload(d, n); }},
  };
  return table;
}

}  // namespace

std::vector<uint8_t> LinearOperator::payload() const {
  detail::throw_error("an operator of kind '", kind(), "' cannot be saved");
}

std::vector<uint8_t> LinearOperator::serialize() const {
  detail::ByteWriter w;
  w.put_string(kind());
  w.put_bytes(payload());
  return detail::wrap_payload(kMagic, kFormatVersion, w.bytes());
}

void LinearOperator::save(const std::string& path) const { detail::write_file_atomically(path, serialize(), "save"); }

std::unique_ptr<LinearOperator> LinearOperator::deserialize(const uint8_t* data, size_t size) {
  const auto [payload, payload_size] = detail::unwrap_payload(data, size, kMagic, kFormatVersion, "operator file");
  detail::ByteReader r(payload, payload_size, "operator file");
  const std::string kind = r.get_string("kind", kMaxKindLength);
  const std::vector<uint8_t> state = r.get_array<uint8_t>("operator state");
  LUTMUL_CHECK(r.done(), "operator file is corrupt: unexpected bytes after the operator");
  const auto loader = loaders().find(kind);
  LUTMUL_CHECK(loader != loaders().end(), "operator file holds an operator of unknown kind '", kind, "'");
  return loader->second(state.data(), state.size());
}

std::unique_ptr<LinearOperator> LinearOperator::load(const std::string& path) {
  const std::vector<uint8_t> bytes = detail::read_whole_file(path, "load");
  try {
    return deserialize(bytes.data(), bytes.size());
  } catch (const Error& e) {
    detail::throw_error("load '", path, "': ", e.what());
  }
}

}  // namespace lutmul
