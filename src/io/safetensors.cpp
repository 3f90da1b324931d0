#include "lutmul/io/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "lutmul/core/error.h"

// Tensor data is copied as is: the format and every host lutmul builds for are little-endian.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

namespace lutmul {
namespace {

using nlohmann::json;

struct DTypeEntry {
  TensorDType dtype;
  const char* name;
  int64_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {TensorDType::F64, "F64", 8},         {TensorDType::F32, "F32", 4},  {TensorDType::F16, "F16", 2},
    {TensorDType::BF16, "BF16", 2},       {TensorDType::I64, "I64", 8},  {TensorDType::I32, "I32", 4},
    {TensorDType::I16, "I16", 2},         {TensorDType::I8, "I8", 1},    {TensorDType::U64, "U64", 8},
    {TensorDType::U32, "U32", 4},         {TensorDType::U16, "U16", 2},  {TensorDType::U8, "U8", 1},
    {TensorDType::BOOL, "BOOL", 1},       {TensorDType::F8_E4M3, "F8_E4M3", 1},
    {TensorDType::F8_E5M2, "F8_E5M2", 1},
};

const DTypeEntry& entry(TensorDType dtype) {
  for (const auto& e : kDTypes)
    if (e.dtype == dtype) return e;
  detail::throw_error("unknown tensor dtype ", static_cast<int>(dtype));
}

// Little-endian loads: the format is little-endian whatever the host.
uint64_t load_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// An unsigned JSON integer that fits int64, or an error naming `what`.
uint64_t unsigned_integer(const json& value, const std::string& what) {
  LUTMUL_CHECK(value.is_number_unsigned(), what, " must be a non-negative integer, got ", value.dump());
  const auto v = value.get<uint64_t>();
  LUTMUL_CHECK(v <= static_cast<uint64_t>(INT64_MAX), what, " is too large: ", v);
  return v;
}

// Parses the header, rejecting duplicate keys (nlohmann keeps the last one silently) and
// nesting deeper than the format uses.
json parse_header(const uint8_t* text, size_t length, const std::string& origin) {
  std::vector<std::set<std::string>> keys_at_depth;
  const json::parser_callback_t callback = [&](int depth, json::parse_event_t event, json& parsed) {
    LUTMUL_CHECK(depth <= 4, origin, ": safetensors header nests deeper than the format allows");
    if (event == json::parse_event_t::object_start) {
      if (static_cast<size_t>(depth) >= keys_at_depth.size()) keys_at_depth.resize(static_cast<size_t>(depth) + 1);
      keys_at_depth[static_cast<size_t>(depth)].clear();
    } else if (event == json::parse_event_t::key && depth >= 1) {
      auto& seen = keys_at_depth[static_cast<size_t>(depth - 1)];
      LUTMUL_CHECK(seen.insert(parsed.get<std::string>()).second, origin, ": safetensors header repeats the key \"",
                   parsed.get<std::string>(), "\"");
    }
    return true;
  };
  try {
    return json::parse(text, text + length, callback);
  } catch (const json::exception& e) {
    detail::throw_error(origin, ": safetensors header is not valid JSON (", e.what(), ")");
  }
}

}  // namespace

std::string dtype_name(TensorDType dtype) { return entry(dtype).name; }
int64_t dtype_size(TensorDType dtype) { return entry(dtype).size; }

int64_t TensorInfo::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // checked against overflow when the header was read
  return n;
}

float half_to_float(uint16_t bits) {
  const uint32_t sign = (bits >> 15) & 1u, exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal: mantissa · 2^-24
  } else if (exponent == 31) {
    magnitude = mantissa == 0 ? INFINITY : NAN;
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  }
  return sign ? -magnitude : magnitude;
}

float bfloat16_to_float(uint16_t bits) {
  const uint32_t word = uint32_t{bits} << 16;
  float value;
  std::memcpy(&value, &word, sizeof value);
  return value;
}

SafetensorsFile SafetensorsFile::read(const std::string& path) {
  std::error_code error;
  LUTMUL_CHECK(std::filesystem::is_regular_file(path, error), path, ": not a readable file");
  std::ifstream in(path, std::ios::binary);
  LUTMUL_CHECK(in.good(), path, ": cannot open");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  LUTMUL_CHECK(size >= 0, path, ": cannot read its size");
  in.seekg(0, std::ios::beg);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), size);
  LUTMUL_CHECK(in.gcount() == size, path, ": short read (", in.gcount(), " of ", size, " bytes)");
  return parse(std::move(bytes), path);
}

SafetensorsFile SafetensorsFile::parse(std::vector<uint8_t> bytes, const std::string& origin) {
  SafetensorsFile file;
  file.origin_ = origin;
  const uint64_t size = bytes.size();
  LUTMUL_CHECK(size >= 8, origin, ": too short for a safetensors file (", size, " bytes, the header length alone is 8)");
  const uint64_t header_bytes = load_u64(bytes.data());
  LUTMUL_CHECK(header_bytes <= kMaxHeaderBytes, origin, ": safetensors header length ", header_bytes,
               " is larger than the ", kMaxHeaderBytes, " bytes allowed");
  LUTMUL_CHECK(header_bytes <= size - 8, origin, ": safetensors header length ", header_bytes, " runs past the end of the ",
               size, "-byte file");
  LUTMUL_CHECK(header_bytes >= 2 && bytes[8] == '{', origin, ": safetensors header must be a JSON object starting with '{'");
  const json header = parse_header(bytes.data() + 8, static_cast<size_t>(header_bytes), origin);
  LUTMUL_CHECK(header.is_object(), origin, ": safetensors header must be a JSON object");
  file.data_start_ = 8 + header_bytes;
  const uint64_t data_bytes = size - file.data_start_;

  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      LUTMUL_CHECK(value.is_object(), origin, ": __metadata__ must be an object of strings");
      for (const auto& [key, text] : value.items()) {
        LUTMUL_CHECK(text.is_string(), origin, ": __metadata__[\"", key, "\"] must be a string, got ", text.dump());
        file.metadata_[key] = text.get<std::string>();
      }
      continue;
    }
    const std::string what = origin + ": tensor \"" + name + "\"";
    LUTMUL_CHECK(value.is_object(), what, " must be an object with dtype, shape and data_offsets");
    for (const auto& [field, unused] : value.items()) {
      (void)unused;
      LUTMUL_CHECK(field == "dtype" || field == "shape" || field == "data_offsets", what, " has an unknown field \"",
                   field, "\"");
    }
    LUTMUL_CHECK(value.contains("dtype") && value.contains("shape") && value.contains("data_offsets"), what,
                 " needs dtype, shape and data_offsets");
    TensorInfo info;
    info.name = name;
    const json& dtype = value["dtype"];
    LUTMUL_CHECK(dtype.is_string(), what, ": dtype must be a string, got ", dtype.dump());
    const auto known = std::find_if(std::begin(kDTypes), std::end(kDTypes),
                                    [&](const DTypeEntry& e) { return dtype.get<std::string>() == e.name; });
    LUTMUL_CHECK(known != std::end(kDTypes), what, ": unknown dtype \"", dtype.get<std::string>(), "\"");
    info.dtype = known->dtype;

    const json& shape = value["shape"];
    LUTMUL_CHECK(shape.is_array(), what, ": shape must be an array, got ", shape.dump());
    uint64_t elements = 1;
    for (const json& dim : shape) {
      const uint64_t d = unsigned_integer(dim, what + " shape entry");
      LUTMUL_CHECK(d == 0 || elements <= static_cast<uint64_t>(INT64_MAX) / d, what, ": shape ", shape.dump(),
                   " has too many elements");
      elements *= d;
      info.shape.push_back(static_cast<int64_t>(d));
    }
    const json& offsets = value["data_offsets"];
    LUTMUL_CHECK(offsets.is_array() && offsets.size() == 2, what, ": data_offsets must be [begin, end], got ",
                 offsets.dump());
    info.begin = unsigned_integer(offsets[0], what + " data_offsets begin");
    info.end = unsigned_integer(offsets[1], what + " data_offsets end");
    LUTMUL_CHECK(info.begin <= info.end, what, ": data_offsets [", info.begin, ", ", info.end, "] end before they begin");
    LUTMUL_CHECK(info.end <= data_bytes, what, ": data_offsets [", info.begin, ", ", info.end,
                 "] run past the end of the data (", data_bytes, " bytes)");
    const auto element_size = static_cast<uint64_t>(known->size);
    LUTMUL_CHECK(elements <= static_cast<uint64_t>(INT64_MAX) / element_size &&
                     elements * element_size == info.end - info.begin,
                 what, ": shape ", shape.dump(), " of ", known->name, " needs ", elements, " x ", element_size,
                 " bytes, but data_offsets [", info.begin, ", ", info.end, "] hold ", info.end - info.begin);
    file.tensors_.push_back(std::move(info));
  }

  // The data must be tiled exactly: no tensor overlaps another, no byte is unaccounted for.
  std::sort(file.tensors_.begin(), file.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : file.tensors_) {
    LUTMUL_CHECK(t.begin >= covered, origin, ": tensor \"", t.name, "\" [", t.begin, ", ", t.end, ") overlaps \"",
                 previous != nullptr ? previous->name : "", "\" [", previous != nullptr ? previous->begin : 0, ", ",
                 covered, ")");
    LUTMUL_CHECK(t.begin == covered, origin, ": bytes [", covered, ", ", t.begin, ") of the data belong to no tensor");
    covered = t.end;
    previous = &t;
  }
  LUTMUL_CHECK(covered == data_bytes, origin, ": the last ", data_bytes - covered, " bytes of the data belong to no tensor");
  for (size_t i = 0; i < file.tensors_.size(); ++i) file.index_[file.tensors_[i].name] = i;
  file.bytes_ = std::move(bytes);
  return file;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo* t = find(name);
  LUTMUL_CHECK(t != nullptr, origin_, ": has no tensor \"", name, "\"");
  return *t;
}

const uint8_t* SafetensorsFile::data(const TensorInfo& tensor) const { return bytes_.data() + data_start_ + tensor.begin; }

std::vector<float> SafetensorsFile::to_float(const std::string& name) const {
  const TensorInfo& t = tensor(name);
  const uint8_t* p = data(t);
  const auto n = static_cast<size_t>(t.elements());
  std::vector<float> out(n);
  switch (t.dtype) {
    case TensorDType::F32:
      if (n > 0) std::memcpy(out.data(), p, n * sizeof(float));
      break;
    case TensorDType::F64:
      for (size_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, p + 8 * i, sizeof v);
        out[i] = static_cast<float>(v);
      }
      break;
    case TensorDType::F16:
      for (size_t i = 0; i < n; ++i) out[i] = half_to_float(load_u16(p + 2 * i));
      break;
    case TensorDType::BF16:
      for (size_t i = 0; i < n; ++i) out[i] = bfloat16_to_float(load_u16(p + 2 * i));
      break;
    default:
      detail::throw_error(origin_, ": tensor \"", name, "\" has dtype ", dtype_name(t.dtype),
                          "; only F64, F32, F16 and BF16 convert to float");
  }
  for (size_t i = 0; i < n; ++i)
    LUTMUL_CHECK(std::isfinite(out[i]), origin_, ": tensor \"", name, "\" has a non-finite value at flat index ", i);
  return out;
}

}  // namespace lutmul
