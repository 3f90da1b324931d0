// LoRA: any operator of the contract as the base, plus named low-rank adapters
// {A (K × r), B (r × M), alpha}; a row that names adapter i gets
//     y = base(x) + (alpha_i / r_i)·(x·A_i)·B_i.
// One batch may mix adapters: the caller passes one adapter id per row (or kNoAdapter), rows
// are grouped by adapter (a counting sort), and each group runs through a kernel that reads
// its rows in place and each A and B once per tile of rows, as Punica's SGMV does on GPUs.
//
// Adapters may be added and removed while other threads run forward: the adapter table is
// an immutable snapshot replaced under a mutex (copy on write); a forward works on the
// snapshot it started with. Ids are never reused, so a stale id is an error, not another
// adapter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lutmul/operators/linear_operator.h"

namespace lutmul {

struct LoraAdapter {
  std::string name;
  int32_t id = -1;
  int64_t rank = 0, m = 0;  // r, M
  float alpha = 0.f;
  std::vector<float> a;         // K × r, row-major
  std::vector<float> b_panels;  // B (r × M) in panels of 16 outputs: [⌈M/16⌉][r][16], zero past M
  float scale() const { return alpha / static_cast<float>(rank); }
  std::vector<float> b() const;  // B as r × M, row-major
};

class LoraLinear final : public SizedLinearOperator {
 public:
  static constexpr int32_t kNoAdapter = -1;

  explicit LoraLinear(std::shared_ptr<const LinearOperator> base);

  // forward(X, Y, ldy): the base alone (merged adapters included, since they are part of it).
  using SizedLinearOperator::forward;
  // Row i adds adapter adapter_ids[i] (an id from add_adapter, or kNoAdapter); null ids means
  // no adapters. A row naming a merged adapter gets it once, from the merged base.
  // Rejects non-finite values in X and ids that are not loaded (on such an error Y may be
  // partly written).
  void forward(const MatrixView& X, const int32_t* adapter_ids, float* Y, int64_t ldy) const;
  Matrix forward(const MatrixView& X, const int32_t* adapter_ids) const;
  // Y += the adapter terms alone (no base): grouped kernels, or one row at a time through the
  // scalar reference. For benchmarks and tests, and for callers who run the base elsewhere.
  void add_adapter_terms(const MatrixView& X, const int32_t* adapter_ids, float* Y, int64_t ldy) const;
  void add_adapter_terms_reference(const MatrixView& X, const int32_t* adapter_ids, float* Y, int64_t ldy) const;

  // The base's own weights and every adapter's A, B and alpha.
  int64_t bytes() const override;
  // The base's count: the adapters' r·(K + M) depends on which rows name them.
  double multiply_adds_per_row() const override;

  // Adds an adapter: A is K × r, B is r × M (copied), alpha finite. Returns its id. Names
  // are unique and non-empty.
  int32_t add_adapter(const std::string& name, const MatrixView& A, const MatrixView& B, float alpha);
  // Removes an adapter (not while merged: unmerge it first). Forwards already running keep it.
  void remove_adapter(const std::string& name);
  // Adds an adapter saved in the PEFT layout (adapter_config.json + adapter_model.safetensors
  // in `directory`); `module` picks one layer when the file holds several (see peft_adapter.h).
  int32_t load_peft(const std::string& directory, const std::string& name, const std::string& module = "");

  int32_t adapter_id(const std::string& name) const;  // throws if unknown
  std::vector<std::string> adapter_names() const;     // in id order
  std::shared_ptr<const LoraAdapter> adapter(const std::string& name) const;

  // Folds W += (alpha/r)·A·B into the base, which must be a DenseLinear (computed in double,
  // rounded once); unmerge subtracts it again, which restores W to within float rounding.
  // The caller's base operator is never modified: the LoRA operator switches to a new one.
  void merge(const std::string& name);
  void unmerge(const std::string& name);
  bool merged(const std::string& name) const;
  std::shared_ptr<const LinearOperator> base() const;

  std::vector<uint8_t> payload() const override;
  static std::unique_ptr<LoraLinear> from_payload(const uint8_t* data, size_t size);

 private:
  // The base alone (merged adapters included, since they are part of it).
  void compute(const MatrixView& X, float* Y, int64_t ldy) const override;
  struct State;
  std::shared_ptr<const State> snapshot() const;
  void publish(std::shared_ptr<const State> next);
  void run(const MatrixView& X, const int32_t* adapter_ids, float* Y, int64_t ldy, bool with_base,
           bool reference) const;

  mutable std::mutex state_mutex_;  // guards state_ (the pointer only)
  std::mutex writer_mutex_;         // serialises add, remove, merge, unmerge
  std::shared_ptr<const State> state_;
};

}  // namespace lutmul
