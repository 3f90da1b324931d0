// One contract for every compressed linear layer Y = X·W (+ bias): dense, int8, MADDNESS,
// and the pruned and low-rank operators to come. The benchmark harness, the Python layer
// and the runtime swap one for another per layer through it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lutmul/core/matrix.h"
#include "lutmul/operators/epilogue.h"

namespace lutmul {

class LinearOperator {
 public:
  virtual ~LinearOperator() = default;

  // "dense", "int8", "maddness", ...
  virtual std::string kind() const = 0;
  virtual int64_t input_dim() const = 0;   // K
  virtual int64_t output_dim() const = 0;  // M

  // Y (N × M, row-major, leading dimension ldy ≥ M) = X·W + bias for X (N × K, any layout
  // MatrixView allows). Thread-safe: any number of callers at once on one operator.
  // Finite values, one rule for every kind: a value of X that would make Y NaN or infinite,
  // or undefined, throws lutmul::Error naming X. For the products that multiply X (dense,
  // int8, pruned, low-rank, LoRA) that is any NaN or infinity they read. MADDNESS only
  // compares the columns its encoder reads with thresholds: a NaN there throws (it has no
  // branch), an infinity takes the branch any large value takes and Y stays finite. Columns an
  // operator never reads (MADDNESS's unsplit ones, the inputs channel pruning drops) cannot
  // change Y and are not inspected. After such an error the contents of Y are unspecified.
  virtual void forward(const MatrixView& X, float* Y, int64_t ldy) const = 0;
  Matrix forward(const MatrixView& X) const;
  // forward with an epilogue (lutmul/operators/epilogue.h): Y = act(X·W + bias), or
  // Y += act(X·W + bias). An operator that fuses epilogues (fuses_epilogue()) applies it as it
  // stores each output, so Y is written once; any other runs forward, then one pass over Y
  // (through a temporary of N × M floats, allocated per call, when accumulating).
  void forward_with(const MatrixView& X, float* Y, int64_t ldy, const Epilogue& epilogue) const;
  virtual bool fuses_epilogue() const { return false; }

  // Bytes the operator keeps for its weights (packed weights, scales, tables, bias).
  virtual int64_t bytes() const = 0;
  // Multiply-adds of an exact dense product with the same work per row (K·M), or the
  // operator's own count where it does less (pruned, low-rank).
  virtual double multiply_adds_per_row() const = 0;

  // ||X·W + b − forward(X)||_F / ||X·W + b||_F against the exact product with `W` (K × M)
  // and `bias` (M floats or null).
  double relative_error(const MatrixView& X, const MatrixView& W, const float* bias = nullptr) const;

  // The library's versioned file format (magic "LUTMULOP", CRC-32, atomic writes): the
  // kind, then the operator's state. load() gives back the operator a file holds, whatever
  // its kind, and throws lutmul::Error for a missing, truncated, corrupt or foreign file.
  std::vector<uint8_t> serialize() const;
  void save(const std::string& path) const;
  static std::unique_ptr<LinearOperator> deserialize(const uint8_t* data, size_t size);
  static std::unique_ptr<LinearOperator> load(const std::string& path);

  // The operator's state as bytes, read back by its kind's from_payload (the table in
  // src/io/operator_file.cpp). A kind that cannot be saved keeps this default, which
  // throws lutmul::Error.
  virtual std::vector<uint8_t> payload() const;

 protected:
  // Shared argument checks: X has K columns, Y is non-null with ldy ≥ M.
  void check_forward(const MatrixView& X, const float* Y, int64_t ldy) const;
  // The fused path of an operator whose fuses_epilogue() is true; the default throws.
  virtual void forward_fused(const MatrixView& X, float* Y, int64_t ldy, const Epilogue& epilogue) const;
  // The operator file version serialize() writes: the oldest whose readers understand this
  // operator's payload (2 for every kind; 3 for a smoothed int8 operator).
  virtual uint32_t file_version() const;
};

// What most operators share: a kind name fixed by the class and the sizes K and M.
// Its forward checks the arguments (check_forward), returns at once for no rows, and hands
// the rest to compute().
class SizedLinearOperator : public LinearOperator {
 public:
  std::string kind() const final { return kind_; }
  int64_t input_dim() const final { return k_; }
  int64_t output_dim() const final { return m_; }
  void forward(const MatrixView& X, float* Y, int64_t ldy) const final;
  using LinearOperator::forward;

 protected:
  explicit SizedLinearOperator(const char* kind) : kind_(kind) {}
  // Y = X·W + bias for arguments already checked, with at least one row.
  virtual void compute(const MatrixView& X, float* Y, int64_t ldy) const = 0;
  int64_t k_ = 0, m_ = 0;

 private:
  const char* kind_;
};

}  // namespace lutmul
