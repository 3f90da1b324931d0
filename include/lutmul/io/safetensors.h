// A reader for the safetensors format (Hugging Face): an 8-byte little-endian header length
// N, N bytes of JSON naming each tensor's dtype, shape and [begin, end) byte offsets into the
// data that follows, then the data. Every structural promise of the header is checked before
// any tensor is handed out: offsets inside the data, bytes = elements × dtype size, tensors
// neither overlapping nor leaving holes, no duplicate names, a bounded header. A file that
// breaks one is a lutmul::Error naming the file, the tensor and the values seen.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lutmul {

enum class TensorDType { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2 };

// "F32", "BF16", ... as the header spells them.
std::string dtype_name(TensorDType dtype);
// Bytes per element.
int64_t dtype_size(TensorDType dtype);

struct TensorInfo {
  std::string name;
  TensorDType dtype = TensorDType::F32;
  std::vector<int64_t> shape;  // empty: a scalar
  uint64_t begin = 0, end = 0;  // byte offsets into the data section
  int64_t elements() const;
};

class SafetensorsFile {
 public:
  // The header may be at most this long (as the reference implementation allows).
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;

  // Reads and checks a whole file.
  static SafetensorsFile read(const std::string& path);
  // Checks the bytes of a file held in memory; `origin` names it in error messages.
  static SafetensorsFile parse(std::vector<uint8_t> bytes, const std::string& origin = "<memory>");

  // All tensors, in the order their data lies in the file.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // The tensor called `name`, or null.
  const TensorInfo* find(const std::string& name) const;
  // The tensor called `name`; throws lutmul::Error if there is none.
  const TensorInfo& tensor(const std::string& name) const;
  // The raw little-endian bytes of a tensor (end − begin of them).
  const uint8_t* data(const TensorInfo& tensor) const;
  // A tensor's values as float, in row-major order: F32 as is, F16 and BF16 widened exactly,
  // F64 rounded. Other dtypes, and values that are not finite, are an error.
  std::vector<float> to_float(const std::string& name) const;
  // The optional "__metadata__" string map.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& origin() const { return origin_; }

 private:
  std::string origin_;
  std::vector<uint8_t> bytes_;
  uint64_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// IEEE half and bfloat16 bit patterns widened to float (exact; NaN stays NaN).
float half_to_float(uint16_t bits);
float bfloat16_to_float(uint16_t bits);

}  // namespace lutmul
