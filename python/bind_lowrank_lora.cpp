// pybind11 bindings of the low-rank and LoRA operators and the safetensors reader. Thin and
// zero-copy on the way in (the operators copy what they keep), GIL released in every heavy
// call. The Pythonic surface lives in lutmul/lowrank.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lutmul/dense_linear.h>
#include <lutmul/lora_linear.h>
#include <lutmul/lowrank_linear.h>
#include <lutmul/peft_adapter.h>
#include <lutmul/safetensors.h>

#include <algorithm>
#include <cstring>
#include <optional>

namespace py = pybind11;
using lutmul::MatrixView;

namespace {

// A float32 2-D array used in place: C order → row-major, Fortran order → column-major (the
// Python layer converts anything else first).
MatrixView matrix_view(const py::array& array, const char* name) {
  if (array.dtype().kind() != 'f' || array.itemsize() != 4) throw py::type_error(std::string(name) + " must be float32");
  if (array.ndim() != 2) throw py::value_error(std::string(name) + " must be 2-D");
  const auto rows = static_cast<int64_t>(array.shape(0)), cols = static_cast<int64_t>(array.shape(1));
  const auto* data = static_cast<const float*>(array.data());
  if (rows == 0 || cols == 0) return MatrixView::row_major(data, rows, cols, cols > 0 ? cols : 1);
  const auto s0 = static_cast<int64_t>(array.strides(0)), s1 = static_cast<int64_t>(array.strides(1));
  if ((s1 == 4 || cols == 1) && s0 % 4 == 0 && s0 / 4 >= cols) return MatrixView::row_major(data, rows, cols, std::max<int64_t>(s0 / 4, 1));
  if ((s0 == 4 || rows == 1) && s1 % 4 == 0 && s1 / 4 >= rows) return MatrixView::col_major(data, rows, cols, std::max<int64_t>(s1 / 4, 1));
  throw py::value_error(std::string(name) + " has strides the kernels cannot read in place");
}

const float* bias_data(const std::optional<py::array>& bias, int64_t m) {
  if (!bias) return nullptr;
  if (bias->ndim() != 1 || bias->shape(0) != m || bias->dtype().kind() != 'f' || bias->itemsize() != 4 || bias->strides(0) != 4)
    throw py::value_error("bias must be a contiguous float32 vector of length M = " + std::to_string(m));
  return static_cast<const float*>(bias->data());
}

// A numpy copy of a row-major float vector.
py::array_t<float> copy_of(const std::vector<float>& values, std::vector<py::ssize_t> shape) {
  py::array_t<float> out(shape);
  if (!values.empty()) std::memcpy(out.mutable_data(), values.data(), values.size() * sizeof(float));
  return out;
}

// Y (row-major float32, N × M, writable) checked against X's rows and the operator's M.
float* output_rows(py::array& y, int64_t rows, int64_t m, int64_t& ldy) {
  const bool empty = y.ndim() == 2 && y.shape(0) == 0;
  if (y.ndim() != 2 || y.dtype().kind() != 'f' || y.itemsize() != 4 || !y.writeable() || y.shape(0) != rows ||
      y.shape(1) != m || (!empty && (y.strides(1) != 4 || y.strides(0) % 4 != 0 || y.strides(0) / 4 < m)))
    throw py::value_error("out must be a writable row-major float32 array of shape (" + std::to_string(rows) + ", " +
                          std::to_string(m) + ")");
  ldy = y.shape(0) > 1 ? y.strides(0) / 4 : m;
  return static_cast<float*>(y.mutable_data());
}

const int32_t* ids_data(const std::optional<py::array_t<int32_t, py::array::c_style>>& ids, int64_t rows) {
  if (!ids) return nullptr;
  if (ids->ndim() != 1 || ids->shape(0) != rows)
    throw py::value_error("adapter_ids must be a vector of " + std::to_string(rows) + " ids, one per row of X");
  return ids->data();
}

lutmul::RankRule rank_rule(const std::string& name) {
  if (name == "rank") return lutmul::RankRule::fixed;
  if (name == "energy") return lutmul::RankRule::energy;
  if (name == "max_error") return lutmul::RankRule::max_error;
  throw py::value_error("rank rule must be 'rank', 'energy' or 'max_error', got '" + name + "'");
}

}  // namespace

void bind_lowrank_lora(py::module_& m) {
  py::class_<lutmul::LowRankLinear, lutmul::LinearOperator>(m, "LowRankLinear")
      .def(py::init([](const py::array& w, const std::optional<py::array>& bias, const std::string& rule, int64_t rank,
                       double energy, double max_error, bool data_aware, double damping,
                       const std::optional<py::array>& calibration) {
             const MatrixView view = matrix_view(w, "W");
             lutmul::LowRankConfig config;
             config.rule = rank_rule(rule);
             config.rank = rank;
             config.energy = energy;
             config.max_error = max_error;
             config.data_aware = data_aware;
             config.damping = damping;
             MatrixView calibration_view;
             if (calibration) calibration_view = matrix_view(*calibration, "calibration");
             const float* b = bias_data(bias, view.cols);
             py::gil_scoped_release release;
             return std::make_unique<lutmul::LowRankLinear>(view, b, config, calibration ? &calibration_view : nullptr);
           }),
           py::arg("w"), py::arg("bias"), py::arg("rule"), py::arg("rank"), py::arg("energy"), py::arg("max_error"),
           py::arg("data_aware"), py::arg("damping"), py::arg("calibration"))
      .def_static("from_factors",
                  [](const py::array& u, const py::array& v, const std::optional<py::array>& bias) {
                    const MatrixView u_view = matrix_view(u, "U"), v_view = matrix_view(v, "V");
                    return std::make_unique<lutmul::LowRankLinear>(u_view, v_view, bias_data(bias, v_view.cols));
                  })
      .def_property_readonly("rank", &lutmul::LowRankLinear::rank)
      .def("u", [](const lutmul::LowRankLinear& s) { return copy_of(s.u(), {s.input_dim(), s.rank()}); })
      .def("v", [](const lutmul::LowRankLinear& s) { return copy_of(s.v(), {s.rank(), s.output_dim()}); })
      .def("bias", [](const lutmul::LowRankLinear& s) { return copy_of(s.bias(), {s.output_dim()}); })
      .def_property_readonly("singular_values", &lutmul::LowRankLinear::singular_values)
      .def_property_readonly("calibration_errors", &lutmul::LowRankLinear::calibration_errors);

  py::class_<lutmul::LoraLinear, lutmul::LinearOperator>(m, "LoraLinear")
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
             return std::make_unique<lutmul::LoraLinear>(std::move(shared));
           }),
           py::arg("base"))
      .def("add_adapter",
           [](lutmul::LoraLinear& self, const std::string& name, const py::array& a, const py::array& b, float alpha) {
             const MatrixView a_view = matrix_view(a, "A"), b_view = matrix_view(b, "B");
             py::gil_scoped_release release;
             return self.add_adapter(name, a_view, b_view, alpha);
           })
      .def("remove_adapter",
           [](lutmul::LoraLinear& self, const std::string& name) {
             py::gil_scoped_release release;
             self.remove_adapter(name);
           })
      .def("load_peft",
           [](lutmul::LoraLinear& self, const std::string& directory, const std::string& name, const std::string& module) {
             py::gil_scoped_release release;
             return self.load_peft(directory, name, module);
           })
      .def("merge",
           [](lutmul::LoraLinear& self, const std::string& name) {
             py::gil_scoped_release release;
             self.merge(name);
           })
      .def("unmerge",
           [](lutmul::LoraLinear& self, const std::string& name) {
             py::gil_scoped_release release;
             self.unmerge(name);
           })
      .def("merged", &lutmul::LoraLinear::merged)
      .def("adapter_id", &lutmul::LoraLinear::adapter_id)
      .def("adapter_names", &lutmul::LoraLinear::adapter_names)
      .def("adapter",
           [](const lutmul::LoraLinear& self, const std::string& name) {
             const auto adapter = self.adapter(name);
             const int64_t k = self.input_dim();
             return py::make_tuple(copy_of(adapter->a, {k, adapter->rank}), copy_of(adapter->b(), {adapter->rank, adapter->m}),
                                   adapter->alpha, adapter->id);
           })
      .def_property_readonly("base_kind", [](const lutmul::LoraLinear& self) { return self.base()->kind(); })
      .def("base_dense_weights",
           [](const lutmul::LoraLinear& self) {
             const auto dense = std::dynamic_pointer_cast<const lutmul::DenseLinear>(self.base());
             if (!dense) throw py::value_error("the base is \"" + self.base()->kind() + "\", not dense");
             return py::make_tuple(copy_of(dense->weights(), {self.input_dim(), self.output_dim()}),
                                   copy_of(dense->bias(), {self.output_dim()}));
           })
      .def("forward_ids_into",
           [](const lutmul::LoraLinear& self, const py::array& x,
              const std::optional<py::array_t<int32_t, py::array::c_style>>& ids, py::array& y, bool adapters_only) {
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
      .def_property_readonly_static("no_adapter", [](py::object) { return lutmul::LoraLinear::kNoAdapter; });

  m.def("read_safetensors", [](const std::string& path) {
    lutmul::SafetensorsFile file = [&] {
      py::gil_scoped_release release;
      return lutmul::SafetensorsFile::read(path);
    }();
    py::dict tensors;
    for (const lutmul::TensorInfo& t : file.tensors()) {
      std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
      tensors[py::str(t.name)] = copy_of(file.to_float(t.name), shape);
    }
    return py::make_tuple(tensors, file.metadata());
  });
  m.def("peft_modules", &lutmul::peft_modules);
}
