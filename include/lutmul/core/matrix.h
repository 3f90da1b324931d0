// Plain views of caller-owned float matrices, and an owning row-major matrix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lutmul {

enum class Layout { row_major, col_major };

// A read-only view: element (i, j) is data[i * ld + j] (row-major) or data[j * ld + i]
// (column-major). ld = 0 means packed (cols for row-major, rows for column-major).
// Pointers need no particular alignment.
struct MatrixView {
  const float* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  Layout layout = Layout::row_major;
  int64_t ld = 0;

  static MatrixView row_major(const float* data, int64_t rows, int64_t cols, int64_t ld = 0) {
    return {data, rows, cols, Layout::row_major, ld == 0 ? cols : ld};
  }
  static MatrixView col_major(const float* data, int64_t rows, int64_t cols, int64_t ld = 0) {
    return {data, rows, cols, Layout::col_major, ld == 0 ? rows : ld};
  }
  int64_t leading_dim() const {
    if (ld != 0) return ld;
    return layout == Layout::row_major ? cols : rows;
  }
  // Rows [first, first + count) as a view of their own (the same layout and ld).
  MatrixView row_range(int64_t first, int64_t count) const {
    return layout == Layout::row_major ? MatrixView{data + first * leading_dim(), count, cols, layout, leading_dim()}
                                       : MatrixView{data + first, count, cols, layout, leading_dim()};
  }
  float at(int64_t i, int64_t j) const {
    return layout == Layout::row_major ? data[i * leading_dim() + j] : data[j * leading_dim() + i];
  }
};

// An owning, packed row-major matrix.
struct Matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> values;

  Matrix() = default;
  Matrix(int64_t rows_, int64_t cols_)
      : rows(rows_), cols(cols_), values(static_cast<size_t>(rows_ * cols_)) {}
  float* data() { return values.data(); }
  const float* data() const { return values.data(); }
  float& operator()(int64_t i, int64_t j) { return values[static_cast<size_t>(i * cols + j)]; }
  float operator()(int64_t i, int64_t j) const { return values[static_cast<size_t>(i * cols + j)]; }
  MatrixView view() const { return MatrixView::row_major(values.data(), rows, cols); }
};

// Throws lutmul::Error naming `what` if the view is malformed (null data with nonzero
// size, negative sizes, a leading dimension smaller than the packed one).
void check_view(const MatrixView& view, const char* what);
// Throws lutmul::Error naming `what` and the first offending (row, column) if any
// element is NaN or infinite.
void check_finite(const MatrixView& view, const char* what);

}  // namespace lutmul
