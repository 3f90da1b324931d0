// Operator files and the kind table: writing, reading back whatever kind a file holds, and
// the build() factory.
#include "io/operator_file.h"

#include <cstring>
#include <mutex>

#include "core/file_format.h"
#include "lutmul/core/error.h"
#include "lutmul/operators/factory.h"
#include "lutmul/operators/maddness_linear.h"

namespace lutmul {
namespace detail {

void register_builtin_kinds();  // src/io/builtin_kinds.cpp

namespace {

constexpr Magic kMagic = {'L', 'U', 'T', 'M', 'U', 'L', 'O', 'P'};
constexpr Magic kModelMagic = {'L', 'U', 'T', 'M', 'U', 'L', 'M', 'D'};  // 0.1, 0.2 MADDNESS model files
constexpr uint64_t kMaxKindLength = 64;

struct KindTable {
  std::mutex mutex;
  std::map<std::string, OperatorKind> kinds;
};

KindTable& table() {
  static KindTable kinds;
  return kinds;
}

// The built-in kinds are registered on first use of the table, from one function that names
// them: a registrar object in each operator's own file would be dropped by the linker when a
// program links the static library without referring to that file.
void ensure_builtin_kinds() {
  static std::once_flag once;
  std::call_once(once, register_builtin_kinds);
}

}  // namespace

std::vector<uint8_t> operator_file_bytes(const std::string& kind, const std::vector<uint8_t>& payload,
                                         uint32_t version) {
  LUTMUL_CHECK(version >= kOldestOperatorFileVersion && version <= kOperatorFileVersion, "operator '", kind,
               "' asks for operator file version ", version, ", which this lutmul does not write");
  ByteWriter w;
  w.put_string(kind);
  w.put_bytes(payload);
  return wrap_payload(kMagic, version, w.bytes());
}

OperatorFileContents read_operator_file(const uint8_t* data, size_t size) {
  const VersionedPayload file =
      unwrap_versioned_payload(data, size, kMagic, kOldestOperatorFileVersion, kOperatorFileVersion, "operator file");
  ByteReader r(file.data, file.size, "operator file");
  OperatorFileContents contents;
  contents.kind = r.get_string("kind", kMaxKindLength);
  contents.payload = r.get_array<uint8_t>("operator state");
  LUTMUL_CHECK(r.done(), "operator file is corrupt: unexpected bytes after the operator");
  return contents;
}

}  // namespace detail

void register_operator_kind(OperatorKind kind) {
  LUTMUL_CHECK(!kind.name.empty() && kind.name.size() <= detail::kMaxKindLength,
               "register_operator_kind: a kind name must have 1 to ", detail::kMaxKindLength, " characters");
  LUTMUL_CHECK(kind.load && kind.build, "register_operator_kind: kind '", kind.name, "' needs both load and build");
  detail::KindTable& t = detail::table();
  std::lock_guard<std::mutex> lock(t.mutex);
  LUTMUL_CHECK(t.kinds.count(kind.name) == 0, "register_operator_kind: kind '", kind.name, "' is already registered");
  const std::string name = kind.name;
  t.kinds.emplace(name, std::move(kind));
}

std::vector<std::string> operator_kinds() {
  detail::ensure_builtin_kinds();
  detail::KindTable& t = detail::table();
  std::lock_guard<std::mutex> lock(t.mutex);
  std::vector<std::string> names;
  for (const auto& entry : t.kinds) names.push_back(entry.first);
  return names;
}

const OperatorKind& operator_kind(const std::string& name) {
  detail::ensure_builtin_kinds();
  detail::KindTable& t = detail::table();
  {
    std::lock_guard<std::mutex> lock(t.mutex);
    const auto it = t.kinds.find(name);
    if (it != t.kinds.end()) return it->second;  // map nodes never move
  }
  std::string known;
  for (const std::string& k : operator_kinds()) known += (known.empty() ? "" : ", ") + k;
  detail::throw_error("unknown operator kind '", name, "' (known: ", known, ")");
}

std::unique_ptr<LinearOperator> build(const std::string& kind, const MatrixView& W, const float* bias,
                                      const MatrixView* calibration, const BuildParams& params) {
  const OperatorKind& entry = operator_kind(kind);
  std::unique_ptr<LinearOperator> op = entry.build(W, bias, calibration, params);
  params.check_all_read(kind);
  return op;
}

std::vector<uint8_t> LinearOperator::payload() const {
  detail::throw_error("an operator of kind '", kind(), "' cannot be saved");
}

std::vector<uint8_t> LinearOperator::serialize() const {
  return detail::operator_file_bytes(kind(), payload(), file_version());
}

uint32_t LinearOperator::file_version() const { return detail::kPlainOperatorFileVersion; }

void LinearOperator::save(const std::string& path) const { detail::write_file_atomically(path, serialize(), "save"); }

std::unique_ptr<LinearOperator> LinearOperator::deserialize(const uint8_t* data, size_t size) {
  LUTMUL_CHECK(data != nullptr || size == 0, "deserialize: null data");  // before the magic is compared
  // A MADDNESS model file of 0.1 or 0.2 is a "maddness" operator too.
  if (size >= sizeof(detail::kModelMagic) && std::memcmp(data, detail::kModelMagic, sizeof(detail::kModelMagic)) == 0)
    return std::make_unique<MaddnessLinear>(Maddness::from_payload(data, size));
  const detail::OperatorFileContents file = detail::read_operator_file(data, size);
  const OperatorKind* kind = nullptr;
  try {
    kind = &operator_kind(file.kind);
  } catch (const Error&) {
    detail::throw_error("operator file holds an operator of unknown kind '", file.kind, "'");
  }
  return kind->load(file.payload.data(), file.payload.size());
}

std::unique_ptr<LinearOperator> LinearOperator::load(const std::string& path) {
  return detail::load_file(path, &LinearOperator::deserialize);
}

}  // namespace lutmul
