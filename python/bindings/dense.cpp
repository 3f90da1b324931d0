// The exact baseline: X @ W + bias through BLAS.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lutmul/operators/dense_linear.h>

#include <optional>

#include "arrays.h"

namespace py = pybind11;
using namespace lutmul::python;

void bind_dense(py::module_& m) {
  py::class_<lutmul::DenseLinear, lutmul::LinearOperator>(m, "DenseLinear")
      .def(py::init([](const py::array& w, const std::optional<py::array>& bias) {
             const lutmul::MatrixView view = matrix_view(w, "W");
             return lutmul::DenseLinear(view, optional_bias(bias, view.cols));
           }),
           py::arg("w"), py::arg("bias") = py::none());
}
