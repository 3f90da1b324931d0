// The table of operator kinds: for each kind name ("dense", "int8", "maddness", ...) how to
// read it from a file and how to build it from dense weights. Loading and the build()
// factory go through it; the built-in kinds are in it from the start, and a program may
// register kinds of its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "lutmul/operators/linear_operator.h"

namespace lutmul {

// A kind's build parameters by name, as text ("ncodebooks" -> "16", "pattern" -> "2:4"):
// the same spelling from C++, Python keyword arguments and command lines. Each kind reads
// what it knows; a name it does not read is an error that lists the names it takes.
class BuildParams {
 public:
  BuildParams() = default;
  BuildParams(std::initializer_list<std::pair<const std::string, std::string>> values) : values_(values) {}
  void set(const std::string& name, const std::string& value) { values_[name] = value; }
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  const std::map<std::string, std::string>& values() const { return values_; }

  // Typed reads with a default; a value that does not parse throws lutmul::Error naming it.
  double number(const std::string& name, double fallback) const;
  int64_t integer(const std::string& name, int64_t fallback) const;
  bool flag(const std::string& name, bool fallback) const;  // true/false, 1/0
  std::string text(const std::string& name, const std::string& fallback) const;
  // Throws lutmul::Error unless every parameter given was read; `kind` and the names read
  // go into the message.
  void check_all_read(const std::string& kind) const;

 private:
  std::map<std::string, std::string> values_;
  mutable std::set<std::string> read_;
};

struct OperatorKind {
  std::string name;
  // The operator a payload holds (the bytes a kind's payload() wrote).
  std::function<std::unique_ptr<LinearOperator>(const uint8_t* payload, size_t size)> load;
  // The operator for W (K × M) and bias (M floats or null); calibration rows (N × K or null)
  // for the kinds that use activations.
  std::function<std::unique_ptr<LinearOperator>(const MatrixView& W, const float* bias,
                                                const MatrixView* calibration, const BuildParams& params)>
      build;
  std::string parameters;  // one line for help texts: "ncodebooks=16 tables=uint8 ..."
};

// Adds a kind; throws lutmul::Error if the name is taken or a function is missing.
void register_operator_kind(OperatorKind kind);
// Every registered kind's name, sorted.
std::vector<std::string> operator_kinds();
// The kind of that name; throws lutmul::Error listing the known ones otherwise.
const OperatorKind& operator_kind(const std::string& name);

// One factory for every kind: build("int8", W, bias), build("maddness", W, bias, &X,
// {{"ncodebooks", "32"}}). Throws lutmul::Error for an unknown kind or parameter.
std::unique_ptr<LinearOperator> build(const std::string& kind, const MatrixView& W, const float* bias = nullptr,
                                      const MatrixView* calibration = nullptr, const BuildParams& params = {});

}  // namespace lutmul
