// Internal: Int8Linear's product through oneDNN's u8·s8 matmul (AMX tiles where the CPU has
// them, else AVX-512 VNNI), for blocks of a fixed row count. It computes only the exact
// integer sums Σ_k (x_q[k] + 128)·w_q[k][m]; Int8Linear subtracts 128·Σ_k w_q[k][m] and
// applies its own float epilogue, so both backends give the same Y bit for bit.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lutmul::detail {

class Int8OnednnProduct {
 public:
  // Row counts of the blocks it runs, largest first; fewer rows than the smallest go to the
  // own kernels (a GEMV or a few rows: oneDNN's call overhead is larger than the work there).
  static constexpr int64_t kBlockRows[] = {64, 32};

  // The product for K × M weights w (row-major K × M, values in [-127, 127]) and rows of x
  // `ldx` bytes apart (ldx ≥ K); null when
  // oneDNN has no exact product for this CPU: its int8 kernels without VNNI or AMX add
  // pairs in saturating 16-bit lanes. `reason` then says why.
  static std::shared_ptr<const Int8OnednnProduct> create(int64_t k, int64_t ldx, int64_t m, const std::vector<int8_t>& w,
                                                         std::string& reason);
  ~Int8OnednnProduct();

  // oneDNN's name for the kernel it runs ("brg:avx512_core_amx", ...).
  const std::string& implementation() const { return implementation_; }
  bool uses_amx() const;

  // sums (rows × M, row-major) of `rows` (one of kBlockRows) rows of u8 x, on `threads`
  // threads. Safe to call concurrently.
  void run(const uint8_t* x, int64_t rows, int32_t* sums, int threads) const;

 private:
  struct Impl;
  explicit Int8OnednnProduct(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string implementation_;
};

}  // namespace lutmul::detail
