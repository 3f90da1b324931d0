// Model files. Layout (little-endian):
//   "LUTMULMD" | u32 format version | u32 0x01020304 (byte-order check) | u64 payload bytes
//   | payload | u32 CRC-32 of the payload
// Every count read back is checked against the bytes that remain before anything is
// allocated, so a truncated or lying file is an Error, never a crash or a huge allocation.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "checksum.h"
#include "lutmul/error.h"
#include "lutmul/maddness.h"

namespace lutmul {
namespace {

constexpr char kMagic[8] = {'L', 'U', 'T', 'M', 'U', 'L', 'M', 'D'};
constexpr uint32_t kFormatVersion = 1;
constexpr uint32_t kByteOrderMark = 0x01020304u;
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8;

class Writer {
 public:
  template <typename T>
  void put(T value) {
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  template <typename T>
  void put_array(const std::vector<T>& values) {
    put<uint64_t>(values.size());
    const auto* p = reinterpret_cast<const uint8_t*>(values.data());
    bytes_.insert(bytes_.end(), p, p + values.size() * sizeof(T));
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  template <typename T>
  T get(const char* what) {
    LUTMUL_CHECK(size_ - offset_ >= sizeof(T), "model file is truncated (reading ", what, " at byte ", offset_, ")");
    T value;
    std::memcpy(&value, data_ + offset_, sizeof(T));
    offset_ += sizeof(T);
    return value;
  }
  template <typename T>
  std::vector<T> get_array(const char* what, uint64_t expected) {
    const uint64_t count = get<uint64_t>(what);
    LUTMUL_CHECK(count == expected, "model file is corrupt: ", what, " has ", count, " entries, expected ", expected);
    LUTMUL_CHECK(count <= (size_ - offset_) / sizeof(T), "model file is truncated (", what, " needs ",
                 count * sizeof(T), " bytes, ", size_ - offset_, " remain)");
    std::vector<T> values(static_cast<size_t>(count));
    if (count > 0) std::memcpy(values.data(), data_ + offset_, count * sizeof(T));
    offset_ += count * sizeof(T);
    return values;
  }
  bool done() const { return offset_ == size_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t offset_ = 0;
};

template <typename T>
void check_all_finite(const std::vector<T>& values, const char* what) {
  for (const T& v : values) LUTMUL_CHECK(std::isfinite(v), "model file is corrupt: ", what, " has a non-finite value");
}

}  // namespace

std::vector<uint8_t> Maddness::serialize() const {
  Writer w;
  w.put<int32_t>(config_.ncodebooks);
  w.put<int32_t>(config_.split_candidates);
  w.put<int32_t>(static_cast<int32_t>(config_.prototypes));
  w.put<double>(config_.heldout_fraction);
  w.put<uint64_t>(config_.seed);
  w.put<int32_t>(static_cast<int32_t>(config_.accumulation));
  w.put<int32_t>(static_cast<int32_t>(config_.tables));
  w.put_array(config_.ridge_lambdas);
  w.put<int64_t>(input_dim_);
  w.put<int64_t>(output_dim_);
  w.put<double>(chosen_lambda_);
  w.put_array(subspace_begin_);
  w.put_array(split_dims_);
  w.put_array(thresholds_);
  w.put_array(prototypes_);
  w.put_array(float_tables_);
  w.put_array(quantized_tables_);
  w.put<float>(table_scale_);
  w.put_array(table_offsets_);
  w.put_array(bias_);

  std::vector<uint8_t> payload = std::move(w.bytes());
  Writer file;
  for (char c : kMagic) file.put<char>(c);
  file.put<uint32_t>(kFormatVersion);
  file.put<uint32_t>(kByteOrderMark);
  file.put<uint64_t>(payload.size());
  std::vector<uint8_t>& out = file.bytes();
  out.insert(out.end(), payload.begin(), payload.end());
  const uint32_t crc = detail::crc32(payload.data(), payload.size());
  file.put<uint32_t>(crc);
  return std::move(file.bytes());
}

Maddness Maddness::deserialize(const uint8_t* data, size_t size) {
  LUTMUL_CHECK(data != nullptr || size == 0, "deserialize: null data");
  LUTMUL_CHECK(size >= kHeaderBytes + 4, "not a lutmul model file: ", size, " bytes is shorter than the header");
  LUTMUL_CHECK(std::memcmp(data, kMagic, 8) == 0, "not a lutmul model file (bad magic bytes)");
  Reader header(data + 8, kHeaderBytes - 8);
  const uint32_t version = header.get<uint32_t>("version");
  const uint32_t mark = header.get<uint32_t>("byte order");
  const uint64_t payload_size = header.get<uint64_t>("payload size");
  LUTMUL_CHECK(mark == kByteOrderMark, "model file was written on a machine of another byte order");
  LUTMUL_CHECK(version == kFormatVersion, "model file format version ", version, " is not supported (this lutmul reads ",
               kFormatVersion, ")");
  LUTMUL_CHECK(payload_size == size - kHeaderBytes - 4, "model file is truncated or has trailing bytes: header says ",
               payload_size, " payload bytes, file has ", size - kHeaderBytes - 4);
  const uint8_t* payload = data + kHeaderBytes;
  uint32_t stored_crc;
  std::memcpy(&stored_crc, payload + payload_size, 4);
  LUTMUL_CHECK(detail::crc32(payload, payload_size) == stored_crc, "model file is corrupt (checksum mismatch)");

  Reader r(payload, payload_size);
  MaddnessConfig config;
  config.ncodebooks = r.get<int32_t>("ncodebooks");
  config.split_candidates = r.get<int32_t>("split_candidates");
  const int32_t prototypes = r.get<int32_t>("prototypes");
  config.heldout_fraction = r.get<double>("heldout_fraction");
  config.seed = r.get<uint64_t>("seed");
  const int32_t accumulation = r.get<int32_t>("accumulation");
  const int32_t tables = r.get<int32_t>("tables");
  LUTMUL_CHECK(prototypes >= 0 && prototypes <= 1 && accumulation >= 0 && accumulation <= 1 && tables >= 0 && tables <= 1,
               "model file is corrupt: unknown enum value");
  config.prototypes = static_cast<PrototypeMethod>(prototypes);
  config.accumulation = static_cast<Accumulation>(accumulation);
  config.tables = static_cast<TableMode>(tables);
  const uint64_t nlambdas = r.get<uint64_t>("ridge_lambdas size");
  LUTMUL_CHECK(nlambdas <= 1024, "model file is corrupt: ", nlambdas, " ridge lambdas");
  for (uint64_t i = 0; i < nlambdas; ++i) config.ridge_lambdas.push_back(r.get<double>("ridge_lambdas"));
  Maddness model(config);  // validates the config

  const int64_t d = r.get<int64_t>("input_dim");
  const int64_t m = r.get<int64_t>("output_dim");
  const int64_t c = config.ncodebooks;
  LUTMUL_CHECK(d >= c && d <= INT32_MAX && m >= 0 && m <= INT32_MAX, "model file is corrupt: D = ", d, ", M = ", m,
               ", C = ", c);
  model.input_dim_ = d;
  model.output_dim_ = m;
  model.chosen_lambda_ = r.get<double>("chosen_lambda");
  const uint64_t npairs = static_cast<uint64_t>((c + 1) / 2);
  const uint64_t uc = static_cast<uint64_t>(c), ud = static_cast<uint64_t>(d), um = static_cast<uint64_t>(m);
  model.subspace_begin_ = r.get_array<int64_t>("subspace bounds", uc + 1);
  model.split_dims_ = r.get_array<int32_t>("split dimensions", uc * kTreeDepth);
  model.thresholds_ = r.get_array<float>("thresholds", uc * kTreeDepth * 8);
  model.prototypes_ = r.get_array<float>("prototypes", uc * kLeaves * ud);
  model.float_tables_ = r.get_array<float>("float tables", um * uc * kLeaves);
  model.quantized_tables_ = r.get_array<uint8_t>("quantized tables", um * npairs * 32);
  model.table_scale_ = r.get<float>("table scale");
  model.table_offsets_ = r.get_array<float>("table offsets", m > 0 ? uc : 0);
  model.bias_ = r.get_array<float>("bias", um);
  LUTMUL_CHECK(r.done(), "model file is corrupt: unexpected bytes after the model");

  // Structural checks: the kernels index with these.
  LUTMUL_CHECK(model.subspace_begin_.front() == 0 && model.subspace_begin_.back() == d,
               "model file is corrupt: subspaces do not cover D");
  for (int64_t i = 0; i < c; ++i) {
    LUTMUL_CHECK(model.subspace_begin_[i] < model.subspace_begin_[i + 1], "model file is corrupt: empty subspace ", i);
    for (int t = 0; t < kTreeDepth; ++t) {
      const int32_t dim = model.split_dims_[i * kTreeDepth + t];
      LUTMUL_CHECK(dim >= model.subspace_begin_[i] && dim < model.subspace_begin_[i + 1],
                   "model file is corrupt: split dimension ", dim, " of codebook ", i, " is outside its subspace");
    }
  }
  for (float t : model.thresholds_) LUTMUL_CHECK(!std::isnan(t), "model file is corrupt: NaN threshold");
  check_all_finite(model.prototypes_, "prototypes");
  check_all_finite(model.float_tables_, "float tables");
  check_all_finite(model.table_offsets_, "table offsets");
  check_all_finite(model.bias_, "bias");
  LUTMUL_CHECK(std::isfinite(model.table_scale_) && model.table_scale_ > 0, "model file is corrupt: table scale ",
               model.table_scale_);
  if (m > 0) model.build_output_offsets();
  return model;
}

void Maddness::save(const std::string& path) const {
  LUTMUL_CHECK(encoder_fitted(), "save: the model is not fitted");
  const std::vector<uint8_t> bytes = serialize();
  // Write a temporary file beside the target, flush it to disk, then rename over the
  // target: readers see the old file or the new one, never half of one.
  std::string tmp = path + ".tmp-XXXXXX";
  const int fd = mkstemp(tmp.data());
  LUTMUL_CHECK(fd >= 0, "save: cannot create a temporary file beside '", path, "': ", std::strerror(errno));
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      detail::throw_error("save: writing '", tmp, "' failed: ", std::strerror(err));
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    detail::throw_error("save: flushing '", tmp, "' failed: ", std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    detail::throw_error("save: renaming onto '", path, "' failed: ", std::strerror(err));
  }
}

Maddness Maddness::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LUTMUL_CHECK(in.good(), "load: cannot open '", path, "': ", std::strerror(errno));
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LUTMUL_CHECK(!in.bad(), "load: reading '", path, "' failed");
  try {
    return deserialize(bytes.data(), bytes.size());
  } catch (const Error& e) {
    detail::throw_error("load '", path, "': ", e.what());
  }
}

}  // namespace lutmul
