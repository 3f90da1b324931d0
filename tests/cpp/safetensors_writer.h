// Test helper: writes safetensors bytes by hand (the library only reads the format), so that
// tests can build valid files and break them on purpose.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace lutmul::testing {

struct RawTensor {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", ...
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

inline std::vector<uint8_t> float_bytes(const std::vector<float>& values) {
  std::vector<uint8_t> out(values.size() * sizeof(float));
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// The JSON header of `tensors` laid out back to back (metadata first when given).
inline std::string safetensors_header(const std::vector<RawTensor>& tensors, const std::string& metadata = "") {
  std::string json = "{";
  if (!metadata.empty()) json += "\"__metadata__\":" + metadata + ",";
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const RawTensor& t = tensors[i];
    json += "\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (size_t d = 0; d < t.shape.size(); ++d) json += (d ? "," : "") + std::to_string(t.shape[d]);
    json += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.bytes.size()) + "]}";
    json += i + 1 < tensors.size() ? "," : "";
    offset += t.bytes.size();
  }
  return json + "}";
}

// A file: 8-byte little-endian length, the header padded with spaces to 8 bytes, the data.
inline std::vector<uint8_t> safetensors_file(const std::string& header, const std::vector<uint8_t>& data) {
  std::string padded = header;
  while (padded.size() % 8 != 0) padded += ' ';
  std::vector<uint8_t> out(8 + padded.size() + data.size());
  const uint64_t n = padded.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, padded.data(), padded.size());
  if (!data.empty()) std::memcpy(out.data() + 8 + padded.size(), data.data(), data.size());
  return out;
}

inline std::vector<uint8_t> safetensors_file(const std::vector<RawTensor>& tensors, const std::string& metadata = "") {
  std::vector<uint8_t> data;
  for (const RawTensor& t : tensors) data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  return safetensors_file(safetensors_header(tensors, metadata), data);
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace lutmul::testing
