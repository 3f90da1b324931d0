// MADDNESS: its enums (Accumulation, PrototypeMethod, TableMode), MaddnessConfig, the model
// (Maddness: fit, encode, scan, tables, files) and the model behind the operator contract
// (MaddnessLinear).
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lutmul/operators/maddness.h>
#include <lutmul/operators/maddness_linear.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "arrays.h"

namespace py = pybind11;
using lutmul::Maddness;
using lutmul::MaddnessConfig;
using lutmul::MatrixView;
using namespace lutmul::python;

namespace {

using PythonProgress = std::function<void(const std::string&, int64_t, int64_t)>;

// A C++ progress callback that takes the GIL to call the Python one (or none).
lutmul::ProgressCallback progress_callback(const PythonProgress& progress) {
  if (!progress) return {};
  return [&progress](const std::string& stage, int64_t done, int64_t total) {
    py::gil_scoped_acquire gil;
    progress(stage, done, total);
  };
}

std::string config_repr(const MaddnessConfig& c) {
  std::ostringstream out;
  out << "MaddnessConfig(ncodebooks=" << c.ncodebooks << ", leaves=" << c.leaves << ", split_candidates=" << c.split_candidates
      << ", prototypes=" << std::string(py::repr(py::cast(c.prototypes)))
      << ", ridge_lambdas=" << std::string(py::repr(py::cast(c.ridge_lambdas)))
      << ", heldout_fraction=" << std::string(py::repr(py::float_(c.heldout_fraction))) << ", seed=" << c.seed
      << ", accumulation=" << std::string(py::repr(py::cast(c.accumulation)))
      << ", tables=" << std::string(py::repr(py::cast(c.tables))) << ")";
  return out.str();
}

void bind_config(py::module_& m) {
  py::enum_<lutmul::Accumulation>(m, "Accumulation")
      .value("exact", lutmul::Accumulation::exact)
      .value("averaged", lutmul::Accumulation::averaged);
  py::enum_<lutmul::PrototypeMethod>(m, "PrototypeMethod")
      .value("ridge", lutmul::PrototypeMethod::ridge)
      .value("bucket_means", lutmul::PrototypeMethod::bucket_means);
  py::enum_<lutmul::TableMode>(m, "TableMode")
      .value("uint8", lutmul::TableMode::uint8)
      .value("float32", lutmul::TableMode::float32);

  const MaddnessConfig d;
  py::class_<MaddnessConfig>(m, "MaddnessConfig")
      .def(py::init([](int ncodebooks, int leaves, int split_candidates, lutmul::PrototypeMethod prototypes,
                       std::vector<double> ridge_lambdas, double heldout_fraction, uint64_t seed,
                       lutmul::Accumulation accumulation, lutmul::TableMode tables) {
             MaddnessConfig c;
             c.ncodebooks = ncodebooks;
             c.leaves = leaves;
             c.split_candidates = split_candidates;
             c.prototypes = prototypes;
             c.ridge_lambdas = std::move(ridge_lambdas);
             c.heldout_fraction = heldout_fraction;
             c.seed = seed;
             c.accumulation = accumulation;
             c.tables = tables;
             return c;
           }),
           py::kw_only(), py::arg("ncodebooks") = d.ncodebooks, py::arg("leaves") = d.leaves,
           py::arg("split_candidates") = d.split_candidates,
           py::arg_v("prototypes", d.prototypes, "PrototypeMethod.ridge"), py::arg("ridge_lambdas") = d.ridge_lambdas,
           py::arg("heldout_fraction") = d.heldout_fraction, py::arg("seed") = d.seed,
           py::arg_v("accumulation", d.accumulation, "Accumulation.exact"), py::arg_v("tables", d.tables, "TableMode.uint8"))
      .def_readwrite("ncodebooks", &MaddnessConfig::ncodebooks)
      .def_readwrite("leaves", &MaddnessConfig::leaves)
      .def_readwrite("split_candidates", &MaddnessConfig::split_candidates)
      .def_readwrite("prototypes", &MaddnessConfig::prototypes)
      .def_readwrite("ridge_lambdas", &MaddnessConfig::ridge_lambdas)
      .def_readwrite("heldout_fraction", &MaddnessConfig::heldout_fraction)
      .def_readwrite("seed", &MaddnessConfig::seed)
      .def_readwrite("accumulation", &MaddnessConfig::accumulation)
      .def_readwrite("tables", &MaddnessConfig::tables)
      .def("__repr__", &config_repr);
}

// Codes from Maddness.encode (uint8, N × C) in the scan's packed layout.
lutmul::EncodedRows packed_codes(const Maddness& self, const py::array_t<uint8_t, py::array::c_style>& codes) {
  if (codes.ndim() != 2 || codes.shape(1) != self.ncodebooks())
    throw py::value_error("codes must have shape (N, " + std::to_string(self.ncodebooks()) + ")");
  lutmul::EncodedRows packed(codes.shape(0), self.ncodebooks(), self.leaves());
  const uint8_t* c = codes.data();
  for (int64_t r = 0; r < codes.shape(0); ++r)
    for (int k = 0; k < self.ncodebooks(); ++k) packed.set_code(r, k, c[r * self.ncodebooks() + k]);
  return packed;
}

// A writable C-contiguous uint16 (rows, m) output array (bfloat16 bits or integer sums).
uint16_t* narrow_rows(py::array_t<uint16_t, py::array::c_style>& y, int64_t rows, int64_t m) {
  if (y.ndim() != 2 || y.shape(0) != rows || y.shape(1) != m || !y.writeable())
    throw py::value_error("out must be a writable C-contiguous uint16 array of shape (" + std::to_string(rows) + ", " +
                          std::to_string(m) + ")");
  return y.mutable_data();
}

void bind_model(py::module_& m) {
  py::class_<Maddness>(m, "Maddness")
      .def(py::init<MaddnessConfig>(), py::arg_v("config", MaddnessConfig{}, "MaddnessConfig()"))
      .def("fit_encoder",
           [](Maddness& self, const py::array& a, const PythonProgress& progress) {
             const MatrixView view = matrix_view(a, "A_train");
             const lutmul::ProgressCallback callback = progress_callback(progress);
             py::gil_scoped_release release;
             self.fit_encoder(view, callback);
           },
           py::arg("a"), py::arg("progress") = nullptr)
      .def("fit",
           [](Maddness& self, const py::array& a, const py::array& b, const std::optional<py::array>& bias,
              const PythonProgress& progress) {
             const MatrixView a_view = matrix_view(a, "A_train");
             const MatrixView b_view = matrix_view(b, "B");
             const float* bias_data = optional_bias(bias, b_view.cols);
             const lutmul::ProgressCallback callback = progress_callback(progress);
             py::gil_scoped_release release;
             self.fit(a_view, b_view, bias_data, callback);
           },
           py::arg("a"), py::arg("b"), py::arg("bias") = py::none(), py::arg("progress") = nullptr)
      .def("set_weights",
           [](Maddness& self, const py::array& b, const std::optional<py::array>& bias) {
             const MatrixView view = matrix_view(b, "B");
             const float* bias_data = optional_bias(bias, view.cols);
             py::gil_scoped_release release;
             self.set_weights(view, bias_data);
           },
           py::arg("b"), py::arg("bias") = py::none())
      .def("matmul_into",
           [](const Maddness& self, const py::array& a, py::array& y) {
             product_into(a, "A", y, self.output_dim(),
                          [&](const MatrixView& view, float* out, int64_t ldy) { self.matmul(view, out, ldy); });
           },
           py::arg("a"), py::arg("y"))
      .def("encode",
           [](const Maddness& self, const py::array& a) {
             const MatrixView view = matrix_view(a, "A");
             lutmul::EncodedRows codes;
             {
               py::gil_scoped_release release;
               self.encode(view, codes);
             }
             return copy_of(codes.unpacked(), {codes.rows(), static_cast<py::ssize_t>(codes.ncodebooks())});
           },
           py::arg("a"))
      .def("scan",
           [](const Maddness& self, const py::array_t<uint8_t, py::array::c_style>& codes, py::array& y) {
             const lutmul::EncodedRows packed = packed_codes(self, codes);
             int64_t ldy = 0;
             float* out = output_rows(y, packed.rows(), self.output_dim(), ldy);
             py::gil_scoped_release release;
             self.scan(packed, out, ldy);
           },
           py::arg("codes"), py::arg("y"))
      .def("matmul_bf16_into",
           [](const Maddness& self, const py::array& a, py::array_t<uint16_t, py::array::c_style>& y) {
             const MatrixView view = matrix_view(a, "A");
             uint16_t* out = narrow_rows(y, view.rows, self.output_dim());
             py::gil_scoped_release release;
             self.matmul_bf16(view, out, self.output_dim());
           },
           py::arg("a"), py::arg("y"))
      .def("scan_sums_into",
           [](const Maddness& self, const py::array_t<uint8_t, py::array::c_style>& codes,
              py::array_t<uint16_t, py::array::c_style>& y) {
             const lutmul::EncodedRows packed = packed_codes(self, codes);
             uint16_t* out = narrow_rows(y, packed.rows(), self.output_dim());
             py::gil_scoped_release release;
             self.scan_sums(packed, out, self.output_dim());
           },
           py::arg("codes"), py::arg("y"))
      .def("sum_scales",
           [](const Maddness& s) {
             py::array_t<float> out(static_cast<py::ssize_t>(s.output_dim()));
             for (int64_t o = 0; o < s.output_dim(); ++o) out.mutable_at(o) = s.sum_scale(o);
             return out;
           })
      .def("sum_offsets",
           [](const Maddness& s) {
             py::array_t<float> out(static_cast<py::ssize_t>(s.output_dim()));
             for (int64_t o = 0; o < s.output_dim(); ++o) out.mutable_at(o) = s.sum_offset(o);
             return out;
           })
      .def("set_accumulation", &Maddness::set_accumulation, py::arg("accumulation"))
      .def("set_table_mode", &Maddness::set_table_mode, py::arg("mode"))
      .def_property_readonly("config", [](const Maddness& s) { return s.config(); })
      .def_property_readonly("encoder_fitted", &Maddness::encoder_fitted)
      .def_property_readonly("has_weights", &Maddness::has_weights)
      .def_property_readonly("input_dim", &Maddness::input_dim)
      .def_property_readonly("output_dim", &Maddness::output_dim)
      .def_property_readonly("ncodebooks", &Maddness::ncodebooks)
      .def_property_readonly("leaves", &Maddness::leaves)
      .def_property_readonly("tree_depth", &Maddness::tree_depth)
      .def_property_readonly("chosen_ridge_lambda", &Maddness::chosen_ridge_lambda)
      .def("table_scales",
           [](const Maddness& s) {
             py::array_t<float> out(static_cast<py::ssize_t>(s.output_dim()));
             for (int64_t o = 0; o < s.output_dim(); ++o) out.mutable_at(o) = s.table_scale(o);
             return out;
           })
      .def("table_offsets",
           [](const Maddness& s) {
             py::array_t<double> out(static_cast<py::ssize_t>(s.output_dim()));
             for (int64_t o = 0; o < s.output_dim(); ++o) out.mutable_at(o) = s.table_offset(o);
             return out;
           })
      .def("split_dims",
           [](const Maddness& s) {
             py::array_t<int32_t> out({static_cast<int64_t>(s.ncodebooks()), int64_t{s.tree_depth()}});
             for (int c = 0; c < s.ncodebooks(); ++c)
               for (int t = 0; t < s.tree_depth(); ++t) out.mutable_at(c, t) = s.split_dim(c, t);
             return out;
           })
      .def("prototypes_view",
           [](py::object self) {
             const auto& s = self.cast<const Maddness&>();
             return readonly_view(s.prototypes(), {s.ncodebooks(), s.leaves(), static_cast<py::ssize_t>(s.input_dim())},
                                  self);
           })
      .def("float_tables_view",
           [](py::object self) {
             const auto& s = self.cast<const Maddness&>();
             return readonly_view(s.float_tables(), {static_cast<py::ssize_t>(s.output_dim()), s.ncodebooks(), s.leaves()},
                                  self);
           })
      .def("quantized_tables_view",
           [](py::object self) {
             const auto& s = self.cast<const Maddness&>();
             // As the scan reads them: codebook pairs of 16 entries, or one codebook of 64.
             const bool pairs = s.leaves() == 16;
             return readonly_view(s.quantized_tables(),
                                  {static_cast<py::ssize_t>(s.output_dim()), pairs ? (s.ncodebooks() + 1) / 2 : s.ncodebooks(),
                                   pairs ? 32 : 64},
                                  self);
           })
      .def("save",
           [](const Maddness& s, const std::string& path) {
             py::gil_scoped_release release;
             s.save(path);
           },
           py::arg("path"))
      .def_static(
          "is_saved_model", [](const std::string& path) { return Maddness::is_saved_model(path); }, py::arg("path"),
          "True when the file holds a model saved by Maddness.save (any release).")
      .def_static("load",
                  [](const std::string& path) {
                    py::gil_scoped_release release;
                    return Maddness::load(path);
                  },
                  py::arg("path"))
      .def("serialize", [](const Maddness& s) { return to_bytes(s.serialize()); })
      .def_static("deserialize",
                  [](const py::bytes& data) {
                    const std::string_view view(data);
                    return Maddness::deserialize(reinterpret_cast<const uint8_t*>(view.data()), view.size());
                  },
                  py::arg("data"));
}

void bind_maddness_linear(py::module_& m) {
  py::class_<lutmul::MaddnessLinear, lutmul::LinearOperator>(m, "MaddnessLinear")
      .def(py::init([](const py::array& w, const std::optional<py::array>& bias, const py::array& calibration,
                       const MaddnessConfig& config) {
             const MatrixView view = matrix_view(w, "W");
             const MatrixView rows = matrix_view(calibration, "calibration");
             const float* b = optional_bias(bias, view.cols);
             py::gil_scoped_release release;
             return lutmul::MaddnessLinear(view, b, rows, config);
           }),
           py::arg("w"), py::arg("bias"), py::arg("calibration"), py::arg_v("config", MaddnessConfig{}, "MaddnessConfig()"))
      .def_property_readonly("ncodebooks", [](const lutmul::MaddnessLinear& op) { return op.model().ncodebooks(); })
      .def_property_readonly("leaves", [](const lutmul::MaddnessLinear& op) { return op.model().leaves(); });
}

}  // namespace

void bind_maddness(py::module_& m) {
  bind_config(m);
  bind_model(m);
  bind_maddness_linear(m);
}
