// The operator contract (LinearOperator) and operator files: forward into a caller's array,
// save, serialize, load and deserialize whatever the kind.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lutmul/operators/linear_operator.h>

#include <string>
#include <string_view>

#include "arrays.h"

namespace py = pybind11;
using namespace lutmul::python;

void bind_operator(py::module_& m) {
  py::class_<lutmul::LinearOperator>(m, "LinearOperator")
      .def_property_readonly("kind", &lutmul::LinearOperator::kind)
      .def_property_readonly("input_dim", &lutmul::LinearOperator::input_dim)
      .def_property_readonly("output_dim", &lutmul::LinearOperator::output_dim)
      .def_property_readonly("bytes", &lutmul::LinearOperator::bytes)
      .def_property_readonly("multiply_adds_per_row", &lutmul::LinearOperator::multiply_adds_per_row)
      .def("forward_into",
           [](const lutmul::LinearOperator& op, const py::array& x, py::array& y, bool gelu, bool accumulate) {
             const lutmul::Epilogue epilogue{gelu ? lutmul::Epilogue::Activation::gelu : lutmul::Epilogue::Activation::none,
                                             accumulate};
             product_into(x, "X", y, op.output_dim(), [&](const lutmul::MatrixView& view, float* out, int64_t ldy) {
               op.forward_with(view, out, ldy, epilogue);
             });
           },
           py::arg("x"), py::arg("y"), py::arg("gelu") = false, py::arg("accumulate") = false)
      .def_property_readonly("fuses_epilogue", &lutmul::LinearOperator::fuses_epilogue)
      .def("save",
           [](const lutmul::LinearOperator& op, const std::string& path) {
             py::gil_scoped_release release;
             op.save(path);
           },
           py::arg("path"))
      .def("serialize", [](const lutmul::LinearOperator& op) { return to_bytes(op.serialize()); });

  // pybind11 hands back the most derived registered class of what these return.
  m.def("load_operator",
        [](const std::string& path) {
          py::gil_scoped_release release;
          return lutmul::LinearOperator::load(path);
        },
        py::arg("path"));
  m.def("deserialize_operator",
        [](const py::bytes& data) {
          const std::string_view view(data);
          return lutmul::LinearOperator::deserialize(reinterpret_cast<const uint8_t*>(view.data()), view.size());
        },
        py::arg("data"));
}
