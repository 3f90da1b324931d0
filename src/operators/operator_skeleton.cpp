#include "operators/operator_skeleton.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <string>

#include "core/file_format.h"
#include "core/finite.h"
#include "lutmul/core/error.h"

namespace lutmul::detail {

void check_weights(const MatrixView& W, const char* who) {
  check_view(W, "W");
  LUTMUL_CHECK(W.rows >= 1 && W.cols >= 1, who, ": W must not be empty, got ", W.rows, " x ", W.cols);
  check_finite(W, "W");
}

void check_calibration(const MatrixView& calibration, int64_t k, const char* who) {
  check_view(calibration, "calibration");
  LUTMUL_CHECK(calibration.cols == k && calibration.rows >= 1, who, ": calibration must be N x ", k,
               " with N >= 1, got ", calibration.rows, " x ", calibration.cols);
  check_finite(calibration, "calibration");
}

std::vector<float> copy_bias(const float* bias, int64_t m, const char* who) {
  std::vector<float> out(static_cast<size_t>(m), 0.f);
  if (bias == nullptr) return out;
  for (int64_t j = 0; j < m; ++j) {
    LUTMUL_CHECK(std::isfinite(bias[j]), who, ": bias has a non-finite value at index ", j);
    out[j] = bias[j];
  }
  return out;
}

bool rows_finite(const MatrixView& X, int64_t first, int64_t count) {
  bool finite = true;
  for (int64_t i = first; i < first + count && finite; ++i) {
    if (X.layout == Layout::row_major) {
      finite = all_finite(X.data + i * X.leading_dim(), static_cast<size_t>(X.cols));
    } else {
      for (int64_t k = 0; k < X.cols; ++k) finite = finite && std::isfinite(X.at(i, k));
    }
  }
  return finite;
}

std::pair<int64_t, int64_t> read_dims(ByteReader& r, const char* kind) {
  const int64_t k = r.get<int64_t>("K"), m = r.get<int64_t>("M");
  LUTMUL_CHECK(k >= 1 && m >= 1 && k <= INT32_MAX && m <= INT32_MAX, "operator file is corrupt: ", kind, " K = ", k,
               ", M = ", m);
  return {k, m};
}

bool rows_finite_on_threads(const MatrixView& X, int threads) {
  const int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, X.rows)));
  // OpenMP may give fewer threads than asked (inside another parallel region): parts round robin.
  return run_on_threads(parts, [&](int thread, int count) {
    bool finite = true;
    for (int p = thread; p < parts && finite; p += count) {
      const auto [begin, end] = partition(X.rows, parts, p);
      finite = rows_finite(X, begin, end - begin);
    }
    return finite;
  });
}

void fill_rows_on_threads(float* Y, int64_t ldy, int64_t rows, const float* row, int64_t m, int threads) {
  const int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, rows)));
  run_on_threads(parts, [&](int thread, int count) {
    for (int p = thread; p < parts; p += count) {
      const auto [begin, end] = partition(rows, parts, p);
      for (int64_t i = begin; i < end; ++i) std::copy_n(row, m, Y + i * ldy);
    }
    return true;
  });
}

void check_rows_finite(const MatrixView& X, const std::vector<uint8_t>* rows, const char* who) {
  bool finite = true;
  for (int64_t i = 0; i < X.rows && finite; ++i)
    if (rows == nullptr || (*rows)[i]) finite = rows_finite(X, i, 1);
  if (!finite) check_finite(X, (std::string(who) + " forward: X").c_str());
}

const float* contiguous_rows(const MatrixView& X, int64_t first, int64_t count, std::vector<float>& buffer,
                             int64_t& ld) {
  if (X.layout == Layout::row_major) {
    ld = X.leading_dim();
    return X.data + first * ld;
  }
  buffer.resize(static_cast<size_t>(count * X.cols));
  for (int64_t i = 0; i < count; ++i)
    for (int64_t k = 0; k < X.cols; ++k) buffer[i * X.cols + k] = X.at(first + i, k);
  ld = X.cols;
  return buffer.data();
}

std::vector<ProductPart> split_product(int64_t rows, int64_t outputs, int threads) {
  constexpr int64_t kRowsPerThread = 16;  // fewer rows than this per thread: split outputs
  std::vector<ProductPart> parts;
  if (threads <= 1) return {{0, rows, 0, outputs}};
  if (rows >= kRowsPerThread * threads) {
    for (int t = 0; t < threads; ++t) {
      const auto [begin, end] = partition(rows, threads, t);
      parts.push_back({begin, end, 0, outputs});
    }
    return parts;
  }
  const int64_t vectors = (outputs + 15) / 16;
  const int used = static_cast<int>(std::min<int64_t>(threads, vectors));
  for (int t = 0; t < used; ++t) {
    const auto [begin, end] = partition(vectors, used, t);
    parts.push_back({0, rows, begin * 16, std::min(outputs, end * 16)});
  }
  return parts;
}

}  // namespace lutmul::detail
