#include "lutmul/core/matrix.h"

#include <cmath>

#include "lutmul/core/error.h"

namespace lutmul {

void check_view(const MatrixView& view, const char* what) {
  LUTMUL_CHECK(view.rows >= 0 && view.cols >= 0, what, ": negative shape (", view.rows, " x ", view.cols, ")");
  const int64_t packed = view.layout == Layout::row_major ? view.cols : view.rows;
  LUTMUL_CHECK(view.leading_dim() >= packed && view.leading_dim() >= 1, what, ": leading dimension ",
               view.leading_dim(), " is smaller than ", packed, " for a ",
               view.layout == Layout::row_major ? "row-major " : "column-major ", view.rows, " x ",
               view.cols, " matrix");
  LUTMUL_CHECK(view.data != nullptr || view.rows == 0 || view.cols == 0, what, ": null data for a ",
               view.rows, " x ", view.cols, " matrix");
}

void check_finite(const MatrixView& view, const char* what) {
  for (int64_t i = 0; i < view.rows; ++i)
    for (int64_t j = 0; j < view.cols; ++j) {
      const float x = view.at(i, j);
      LUTMUL_CHECK(std::isfinite(x), what, " has a non-finite value (", x, ") at row ", i, ", column ", j);
    }
}

}  // namespace lutmul
