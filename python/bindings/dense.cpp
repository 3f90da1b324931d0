// The exact baseline: X @ W + bias through BLAS.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lutmul/operators/dense_linear.h>

#include <algorithm>
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
           py::arg("w"), py::arg("bias") = py::none())
      .def_property_readonly(
          "weights",
          [](const lutmul::DenseLinear& self) {
            py::array_t<float> out({self.input_dim(), self.output_dim()});
            std::copy(self.weights().begin(), self.weights().end(), out.mutable_data());
            return out;
          },
          "W (K, M), a copy.")
      .def_property_readonly(
          "bias",
          [](const lutmul::DenseLinear& self) {
            py::array_t<float> out(static_cast<py::ssize_t>(self.bias().size()));
            std::copy(self.bias().begin(), self.bias().end(), out.mutable_data());
            return out;
          },
          "The bias (M,), zeros when none was given; a copy.");
}
