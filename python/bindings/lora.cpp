// LoRA: named adapters (A, B, alpha) on any operator, one adapter per row of a batch.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lutmul/operators/dense_linear.h>
#include <lutmul/operators/lora_linear.h>

#include <memory>
#include <optional>
#include <string>

#include "arrays.h"

namespace py = pybind11;
using lutmul::LoraLinear;
using lutmul::MatrixView;
using namespace lutmul::python;

namespace {

using Ids = py::array_t<int32_t, py::array::c_style>;

const int32_t* ids_data(const std::optional<Ids>& ids, int64_t rows) {
  if (!ids) return nullptr;
  if (ids->ndim() != 1 || ids->shape(0) != rows)
    throw py::value_error("adapter_ids must be a vector of " + std::to_string(rows) + " ids, one per row of X");
  return ids->data();
}

}  // namespace

void bind_lora(py::module_& m) {
  py::class_<LoraLinear, lutmul::LinearOperator>(m, "LoraLinear")
      .def(py::init([](py::object base) {
             const auto* op = base.cast<const lutmul::LinearOperator*>();
             if (op == nullptr) throw py::value_error("the base operator is None");
             // The Python object owns the base: keep it alive as long as the C++ side needs it,
             // and let go of it under the GIL, from whichever thread drops the last reference.
             auto* keeper = new py::object(std::move(base));
             std::shared_ptr<const lutmul::LinearOperator> shared(op, [keeper](const lutmul::LinearOperator*) {
               py::gil_scoped_acquire gil;
               delete keeper;
             });
             return std::make_unique<LoraLinear>(std::move(shared));
           }),
           py::arg("base"))
      .def("add_adapter",
           [](LoraLinear& self, const std::string& name, const py::array& a, const py::array& b, float alpha) {
             const MatrixView a_view = matrix_view(a, "A"), b_view = matrix_view(b, "B");
             py::gil_scoped_release release;
             return self.add_adapter(name, a_view, b_view, alpha);
           },
           py::arg("name"), py::arg("a"), py::arg("b"), py::arg("alpha"))
      .def("remove_adapter",
           [](LoraLinear& self, const std::string& name) {
             py::gil_scoped_release release;
             self.remove_adapter(name);
           },
           py::arg("name"))
      .def("load_peft",
           [](LoraLinear& self, const std::string& directory, const std::string& name, const std::string& module) {
             py::gil_scoped_release release;
             return self.load_peft(directory, name, module);
           },
           py::arg("directory"), py::arg("name"), py::arg("module"))
      .def("merge",
           [](LoraLinear& self, const std::string& name) {
             py::gil_scoped_release release;
             self.merge(name);
           },
           py::arg("name"))
      .def("unmerge",
           [](LoraLinear& self, const std::string& name) {
             py::gil_scoped_release release;
             self.unmerge(name);
           },
           py::arg("name"))
      .def("merged", &LoraLinear::merged, py::arg("name"))
      .def("adapter_id", &LoraLinear::adapter_id, py::arg("name"))
      .def("adapter_names", &LoraLinear::adapter_names)
      .def("adapter",
           [](const LoraLinear& self, const std::string& name) {
             const auto adapter = self.adapter(name);
             const int64_t k = self.input_dim();
             return py::make_tuple(copy_of(adapter->a, {k, adapter->rank}), copy_of(adapter->b(), {adapter->rank, adapter->m}),
                                   adapter->alpha, adapter->id);
           },
           py::arg("name"))
      .def_property_readonly("base_kind", [](const LoraLinear& self) { return self.base()->kind(); })
      .def("base_dense_weights",
           [](const LoraLinear& self) {
             const auto dense = std::dynamic_pointer_cast<const lutmul::DenseLinear>(self.base());
             if (!dense) throw py::value_error("the base is \"" + self.base()->kind() + "\", not dense");
             return py::make_tuple(copy_of(dense->weights(), {self.input_dim(), self.output_dim()}),
                                   copy_of(dense->bias(), {self.output_dim()}));
           })
      .def("forward_ids_into",
           [](const LoraLinear& self, const py::array& x, const std::optional<Ids>& ids, py::array& y, bool adapters_only) {
             const MatrixView view = matrix_view(x, "X");
             int64_t ldy = 0;
             float* out = output_rows(y, view.rows, self.output_dim(), ldy);
             const int32_t* id_data = ids_data(ids, view.rows);
             if (view.rows == 0) return;
             py::gil_scoped_release release;
             if (adapters_only) {
               self.add_adapter_terms(view, id_data, out, ldy);
             } else {
               self.forward(view, id_data, out, ldy);
             }
           },
           py::arg("x"), py::arg("ids"), py::arg("y"), py::arg("adapters_only") = false)
      .def_property_readonly_static("no_adapter", [](py::object) { return LoraLinear::kNoAdapter; });
}
