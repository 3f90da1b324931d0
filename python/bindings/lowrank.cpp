// Low-rank factorisation: RankRule, LowRankConfig, LowRankLinear.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lutmul/operators/lowrank_linear.h>

#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "arrays.h"

namespace py = pybind11;
using lutmul::LowRankConfig;
using lutmul::MatrixView;
using namespace lutmul::python;

void bind_lowrank(py::module_& m) {
  py::enum_<lutmul::RankRule>(m, "RankRule")
      .value("fixed", lutmul::RankRule::fixed)
      .value("energy", lutmul::RankRule::energy)
      .value("max_error", lutmul::RankRule::max_error);

  const LowRankConfig d;
  py::class_<LowRankConfig>(m, "LowRankConfig")
      .def(py::init([](lutmul::RankRule rule, int64_t rank, double energy, double max_error, bool data_aware,
                       double damping) {
             LowRankConfig c;
             c.rule = rule;
             c.rank = rank;
             c.energy = energy;
             c.max_error = max_error;
             c.data_aware = data_aware;
             c.damping = damping;
             return c;
           }),
           py::kw_only(), py::arg_v("rule", d.rule, "RankRule.fixed"), py::arg("rank") = d.rank, py::arg("energy") = d.energy,
           py::arg("max_error") = d.max_error, py::arg("data_aware") = d.data_aware, py::arg("damping") = d.damping)
      .def_readwrite("rule", &LowRankConfig::rule)
      .def_readwrite("rank", &LowRankConfig::rank)
      .def_readwrite("energy", &LowRankConfig::energy)
      .def_readwrite("max_error", &LowRankConfig::max_error)
      .def_readwrite("data_aware", &LowRankConfig::data_aware)
      .def_readwrite("damping", &LowRankConfig::damping)
      .def("__repr__", [](const LowRankConfig& c) {
        std::ostringstream out;
        out << "LowRankConfig(rule=" << std::string(py::repr(py::cast(c.rule))) << ", rank=" << c.rank
            << ", energy=" << std::string(py::repr(py::float_(c.energy)))
            << ", max_error=" << std::string(py::repr(py::float_(c.max_error)))
            << ", data_aware=" << (c.data_aware ? "True" : "False")
            << ", damping=" << std::string(py::repr(py::float_(c.damping))) << ")";
        return out.str();
      });

  py::class_<lutmul::LowRankLinear, lutmul::LinearOperator>(m, "LowRankLinear")
      .def(py::init([](const py::array& w, const std::optional<py::array>& bias, const LowRankConfig& config,
                       const std::optional<py::array>& calibration) {
             const MatrixView view = matrix_view(w, "W");
             MatrixView storage;
             const MatrixView* rows = optional_matrix_view(calibration, storage);
             const float* b = optional_bias(bias, view.cols);
             py::gil_scoped_release release;
             return std::make_unique<lutmul::LowRankLinear>(view, b, config, rows);
           }),
           py::arg("w"), py::arg("bias") = py::none(), py::arg_v("config", d, "LowRankConfig()"), py::arg("calibration") = py::none())
      .def_static("from_factors",
                  [](const py::array& u, const py::array& v, const std::optional<py::array>& bias) {
                    const MatrixView u_view = matrix_view(u, "U"), v_view = matrix_view(v, "V");
                    return std::make_unique<lutmul::LowRankLinear>(u_view, v_view, optional_bias(bias, v_view.cols));
                  },
                  py::arg("u"), py::arg("v"), py::arg("bias") = py::none())
      .def_property_readonly("rank", &lutmul::LowRankLinear::rank)
      .def("u", [](const lutmul::LowRankLinear& s) { return copy_of(s.u(), {s.input_dim(), s.rank()}); })
      .def("v", [](const lutmul::LowRankLinear& s) { return copy_of(s.v(), {s.rank(), s.output_dim()}); })
      .def("bias", [](const lutmul::LowRankLinear& s) { return copy_of(s.bias(), {s.output_dim()}); })
      .def_property_readonly("singular_values", &lutmul::LowRankLinear::singular_values)
      .def_property_readonly("calibration_errors", &lutmul::LowRankLinear::calibration_errors);
}
