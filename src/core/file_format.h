// The library's file container and the byte-level readers and writers behind it. Layout
// (little-endian):
//   8 magic bytes | u32 format version | u32 0x01020304 (byte-order check) | u64 payload bytes
//   | payload | u32 CRC-32 of the payload
// Every count read back is checked against the bytes that remain and against
// kMaxArrayEntries before anything is allocated, so a truncated or lying file is an Error,
// never a crash or a huge allocation (docs/design.md, "Limits").
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "lutmul/core/error.h"

namespace lutmul::detail {

// The most entries one array in a file may have: 2^40 (4 TiB of floats, beyond any layer).
// Sizes computed from several dimensions read from a file go through array_entries, which
// checks each partial product against it, so the product never overflows.
constexpr uint64_t kMaxArrayEntries = uint64_t{1} << 40;

// The product of `dims`, or an Error naming `field` when it exceeds kMaxArrayEntries.
inline uint64_t array_entries(const char* what, const char* field, std::initializer_list<uint64_t> dims) {
  uint64_t product = 1;
  for (const uint64_t d : dims) {
    LUTMUL_CHECK(d == 0 || product <= kMaxArrayEntries / d, what, " is corrupt: ", field, " would have more than 2^40 entries");
    product *= d;
  }
  LUTMUL_CHECK(product <= kMaxArrayEntries, what, " is corrupt: ", field, " would have more than 2^40 entries");
  return product;
}

class ByteWriter {
 public:
  template <typename T>
  void put(T value) {
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  template <typename T, typename Allocator>
  void put_array(const std::vector<T, Allocator>& values) {
    put<uint64_t>(values.size());
    const auto* p = reinterpret_cast<const uint8_t*>(values.data());
    bytes_.insert(bytes_.end(), p, p + values.size() * sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  void put_bytes(const std::vector<uint8_t>& bytes) { put_array(bytes); }
  // Fields in order: a vector as put_array, anything else as put of its own type.
  template <typename... Fields>
  ByteWriter& put_fields(const Fields&... fields) {
    (put_field(fields), ...);
    return *this;
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  template <typename T, typename Allocator>
  void put_field(const std::vector<T, Allocator>& values) { put_array(values); }
  template <typename T>
  void put_field(const T& value) { put<T>(value); }
  std::vector<uint8_t> bytes_;
};

// The bytes of the fields, in order (ByteWriter::put_fields): an operator's payload.
template <typename... Fields>
std::vector<uint8_t> pack(const Fields&... fields) {
  ByteWriter w;
  w.put_fields(fields...);
  return std::move(w.bytes());
}

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size, const char* what = "model file") : data_(data), size_(size), what_(what) {}

  template <typename T>
  T get(const char* field) {
    LUTMUL_CHECK(size_ - offset_ >= sizeof(T), what_, " is truncated (reading ", field, " at byte ", offset_, ")");
    T value;
    std::memcpy(&value, data_ + offset_, sizeof(T));
    offset_ += sizeof(T);
    return value;
  }
  // An array whose length the reader already knows.
  template <typename T>
  std::vector<T> get_array(const char* field, uint64_t expected) {
    const uint64_t count = get<uint64_t>(field);
    LUTMUL_CHECK(count == expected, what_, " is corrupt: ", field, " has ", count, " entries, expected ", expected);
    return take<T>(field, count);
  }
  // An array of any length that fits in what remains.
  template <typename T>
  std::vector<T> get_array(const char* field) {
    return take<T>(field, get<uint64_t>(field));
  }
  std::string get_string(const char* field, uint64_t max_length) {
    const uint64_t length = get<uint64_t>(field);
    LUTMUL_CHECK(length <= max_length && length <= size_ - offset_, what_, " is corrupt: ", field, " of ", length,
                 " bytes");
    std::string s(reinterpret_cast<const char*>(data_ + offset_), static_cast<size_t>(length));
    offset_ += length;
    return s;
  }
  bool done() const { return offset_ == size_; }
  const char* what() const { return what_; }

 private:
  template <typename T>
  std::vector<T> take(const char* field, uint64_t count) {
    LUTMUL_CHECK(count <= kMaxArrayEntries, what_, " is corrupt: ", field, " claims ", count,
                 " entries, more than the 2^40 a file may hold");
    LUTMUL_CHECK(count <= (size_ - offset_) / sizeof(T), what_, " is truncated (", field, " needs ", count,
                 " entries of ", sizeof(T), " bytes, ", size_ - offset_, " bytes remain)");
    std::vector<T> values(static_cast<size_t>(count));
    if (count > 0) std::memcpy(values.data(), data_ + offset_, count * sizeof(T));
    offset_ += count * sizeof(T);
    return values;
  }

  const uint8_t* data_;
  size_t size_;
  size_t offset_ = 0;
  const char* what_;
};

template <typename T>
void check_all_finite(const std::vector<T>& values, const char* field, const char* what = "model file") {
  for (const T& v : values) LUTMUL_CHECK(std::isfinite(v), what, " is corrupt: ", field, " has a non-finite value");
}

using Magic = char[8];

// The whole file: header, payload, checksum.
std::vector<uint8_t> wrap_payload(const Magic& magic, uint32_t version, const std::vector<uint8_t>& payload);
// The payload of a whole file, after checking magic, version, byte order, length and checksum.
// `what` names the kind of file in messages ("model file", "operator file").
std::pair<const uint8_t*, size_t> unwrap_payload(const uint8_t* data, size_t size, const Magic& magic, uint32_t version,
                                                 const char* what);
// The same for a format whose readers still take older versions: any of oldest..newest.
struct VersionedPayload {
  const uint8_t* data;
  size_t size;
  uint32_t version;
};
VersionedPayload unwrap_versioned_payload(const uint8_t* data, size_t size, const Magic& magic, uint32_t oldest,
                                          uint32_t newest, const char* what);

// Writes a temporary file beside `path`, flushes it to disk, then renames it over `path`:
// readers see the old file or the new one, never half of one, and a failure leaves the old.
void write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes, const char* who);
std::vector<uint8_t> read_whole_file(const std::string& path, const char* who);

// read(bytes, size) on the whole file at `path`; its errors come back naming the path.
template <class Read>
auto load_file(const std::string& path, Read&& read) -> decltype(read(nullptr, size_t{0})) {
  const std::vector<uint8_t> bytes = read_whole_file(path, "load");
  try {
    return read(bytes.data(), bytes.size());
  } catch (const Error& e) {
    throw_error("load '", path, "': ", e.what());
  }
}

}  // namespace lutmul::detail
