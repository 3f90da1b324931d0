// Bf16Linear: X @ W + bias with bfloat16 weights, through oneDNN where the CPU has a bfloat16 product.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lutmul/operators/bf16_linear.h>

#include <optional>

#include "arrays.h"

namespace py = pybind11;
using namespace lutmul::python;

void bind_bf16(py::module_& m) {
  py::class_<lutmul::Bf16Linear, lutmul::LinearOperator>(m, "Bf16Linear")
      .def(py::init([](const py::array& w, const std::optional<py::array>& bias) {
             const lutmul::MatrixView view = matrix_view(w, "W");
             return lutmul::Bf16Linear(view, optional_bias(bias, view.cols));
           }),
           py::arg("w"), py::arg("bias") = py::none())
      .def_property_readonly("path", &lutmul::Bf16Linear::path);
}
