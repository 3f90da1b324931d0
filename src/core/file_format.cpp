#include "core/file_format.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/checksum.h"

namespace lutmul::detail {
namespace {
constexpr uint32_t kByteOrderMark = 0x01020304u;
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8;
}  // namespace

std::vector<uint8_t> wrap_payload(const Magic& magic, uint32_t version, const std::vector<uint8_t>& payload) {
  ByteWriter file;
  for (char c : magic) file.put<char>(c);
  file.put<uint32_t>(version);
  file.put<uint32_t>(kByteOrderMark);
  file.put<uint64_t>(payload.size());
  std::vector<uint8_t>& out = file.bytes();
  out.insert(out.end(), payload.begin(), payload.end());
  file.put<uint32_t>(crc32(payload.data(), payload.size()));
  return std::move(file.bytes());
}

VersionedPayload unwrap_versioned_payload(const uint8_t* data, size_t size, const Magic& magic, uint32_t oldest,
                                          uint32_t newest, const char* what) {
  LUTMUL_CHECK(data != nullptr || size == 0, "deserialize: null data");
  LUTMUL_CHECK(size >= kHeaderBytes + 4, "not a lutmul ", what, ": ", size, " bytes is shorter than the header");
  LUTMUL_CHECK(std::memcmp(data, magic, 8) == 0, "not a lutmul ", what, " (bad magic bytes)");
  ByteReader header(data + 8, kHeaderBytes - 8, what);
  const uint32_t file_version = header.get<uint32_t>("version");
  const uint32_t mark = header.get<uint32_t>("byte order");
  const uint64_t payload_size = header.get<uint64_t>("payload size");
  LUTMUL_CHECK(mark == kByteOrderMark, what, " was written on a machine of another byte order");
  LUTMUL_CHECK(file_version >= oldest && file_version <= newest, what, " format version ", file_version,
               " is not supported (this lutmul reads ", oldest == newest ? "" : std::to_string(oldest) + " to ", newest, ")");
  LUTMUL_CHECK(payload_size == size - kHeaderBytes - 4, what, " is truncated or has trailing bytes: header says ",
               payload_size, " payload bytes, file has ", size - kHeaderBytes - 4);
  const uint8_t* payload = data + kHeaderBytes;
  uint32_t stored_crc;
  std::memcpy(&stored_crc, payload + payload_size, 4);
  LUTMUL_CHECK(crc32(payload, payload_size) == stored_crc, what, " is corrupt (checksum mismatch)");
  return {payload, static_cast<size_t>(payload_size), file_version};
}

std::pair<const uint8_t*, size_t> unwrap_payload(const uint8_t* data, size_t size, const Magic& magic, uint32_t version,
                                                 const char* what) {
  const VersionedPayload p = unwrap_versioned_payload(data, size, magic, version, version, what);
  return {p.data, p.size};
}

void write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes, const char* who) {
  std::string tmp = path + ".tmp-XXXXXX";
  const int fd = mkstemp(tmp.data());
  LUTMUL_CHECK(fd >= 0, who, ": cannot create a temporary file beside '", path, "': ", std::strerror(errno));
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw_error(who, ": writing '", tmp, "' failed: ", std::strerror(err));
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw_error(who, ": flushing '", tmp, "' failed: ", std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw_error(who, ": renaming onto '", path, "' failed: ", std::strerror(err));
  }
}

std::vector<uint8_t> read_whole_file(const std::string& path, const char* who) {
  // A folder opens as a stream on Linux, then fails on the first read with an iostream
  // exception rather than lutmul::Error: refuse it by name first.
  std::error_code error;
  LUTMUL_CHECK(!std::filesystem::is_directory(path, error), who, ": '", path, "' is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  LUTMUL_CHECK(in.good(), who, ": cannot open '", path, "': ", std::strerror(errno));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LUTMUL_CHECK(!in.bad(), who, ": reading '", path, "' failed");
  return bytes;
}

}  // namespace lutmul::detail
