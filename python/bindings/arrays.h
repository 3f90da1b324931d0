// Array conversion shared by every binding file: numpy arrays in (zero copy, checked), numpy
// arrays out (copies, or read-only views owned by a Python object). The Python layer
// (lutmul/_arrays.py) converts dtypes and strides first, so these checks are the last line.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <lutmul/core/matrix.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace lutmul::python {

namespace py = pybind11;

// A float32 2-D array used in place: C-contiguous → row-major, F-contiguous → column-major,
// other strides with unit element stride along one axis → that layout with a leading
// dimension. Anything else is rejected.
inline MatrixView matrix_view(const py::array& array, const char* name) {
  if (!py::isinstance<py::array_t<float>>(array) || array.dtype().kind() != 'f' || array.itemsize() != 4)
    throw py::type_error(std::string(name) + " must be a float32 array");
  if (array.ndim() != 2) throw py::value_error(std::string(name) + " must be 2-D, got " + std::to_string(array.ndim()) + "-D");
  const auto rows = static_cast<int64_t>(array.shape(0)), cols = static_cast<int64_t>(array.shape(1));
  const auto s0 = static_cast<int64_t>(array.strides(0)), s1 = static_cast<int64_t>(array.strides(1));
  const auto* data = static_cast<const float*>(array.data());
  if (rows == 0 || cols == 0) return MatrixView::row_major(data, rows, cols, cols > 0 ? cols : 1);  // numpy gives no strides
  if ((s1 == 4 || cols <= 1) && s0 % 4 == 0 && s0 / 4 >= cols) return MatrixView::row_major(data, rows, cols, s0 / 4 > 0 ? s0 / 4 : 1);
  if ((s0 == 4 || rows <= 1) && s1 % 4 == 0 && s1 / 4 >= rows) return MatrixView::col_major(data, rows, cols, s1 / 4 > 0 ? s1 / 4 : 1);
  throw py::value_error(std::string(name) + " has strides the kernels cannot read in place");
}

// A view of optional rows (calibration); `storage` keeps the view alive for the call.
inline const MatrixView* optional_matrix_view(const std::optional<py::array>& rows, MatrixView& storage,
                                              const char* name = "calibration") {
  if (!rows) return nullptr;
  storage = matrix_view(*rows, name);
  return &storage;
}

// An optional bias: a contiguous float32 vector of length m, or null.
inline const float* optional_bias(const std::optional<py::array>& bias, int64_t m) {
  if (!bias) return nullptr;
  if (bias->ndim() != 1 || bias->shape(0) != m || bias->dtype().kind() != 'f' || bias->itemsize() != 4 || bias->strides(0) != 4)
    throw py::value_error("bias must be a contiguous float32 vector of length M = " + std::to_string(m));
  return static_cast<const float*>(bias->data());
}

// The caller's output Y (row-major float32, rows × m, writable), checked; ldy receives its
// leading dimension.
inline float* output_rows(py::array& y, int64_t rows, int64_t m, int64_t& ldy) {
  const bool empty = y.ndim() == 2 && y.shape(0) == 0;
  if (y.ndim() != 2 || y.dtype().kind() != 'f' || y.itemsize() != 4 || !y.writeable() || y.shape(0) != rows ||
      y.shape(1) != m || (!empty && (y.strides(1) != 4 || y.strides(0) % 4 != 0 || y.strides(0) / 4 < m)))
    throw py::value_error("out must be a writable row-major float32 array of shape (" + std::to_string(rows) + ", " +
                          std::to_string(m) + ")");
  ldy = y.shape(0) > 1 ? y.strides(0) / 4 : m;
  return static_cast<float*>(y.mutable_data());
}

// The *_into calls written once: X (named `name`) read in place, the caller's Y checked
// against M = m, then product(X, Y, ldy) with the GIL released (nothing for no rows).
template <class Product>
void product_into(const py::array& x, const char* name, py::array& y, int64_t m, Product&& product) {
  const MatrixView view = matrix_view(x, name);
  int64_t ldy = 0;
  float* out = output_rows(y, view.rows, m, ldy);
  if (view.rows == 0) return;
  py::gil_scoped_release release;
  product(view, out, ldy);
}

// A numpy copy of a row-major vector.
template <typename T>
py::array_t<T> copy_of(const std::vector<T>& values, std::vector<py::ssize_t> shape) {
  py::array_t<T> out(shape);
  if (!values.empty()) std::memcpy(out.mutable_data(), values.data(), values.size() * sizeof(T));
  return out;
}

// A read-only numpy view of a vector, kept alive by `owner` (the Python object holding it).
template <typename T, typename Allocator>
py::array readonly_view(const std::vector<T, Allocator>& values, std::vector<py::ssize_t> shape, py::handle owner) {
  py::array out(py::dtype::of<T>(), shape, {}, values.data(), owner);
  py::detail::array_proxy(out.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return out;
}

// Python bytes of a file-format buffer.
inline py::bytes to_bytes(const std::vector<uint8_t>& data) {
  return py::bytes(reinterpret_cast<const char*>(data.data()), data.size());
}

}  // namespace lutmul::python
