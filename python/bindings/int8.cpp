// int8 weights and activations: ActivationScaling, Int8Backend, Int8Config, Int8Linear.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lutmul/operators/int8_linear.h>

#include <optional>
#include <string>

#include "arrays.h"

namespace py = pybind11;
using namespace lutmul::python;

void bind_int8(py::module_& m) {
  py::enum_<lutmul::ActivationScaling>(m, "ActivationScaling")
      .value("dynamic_per_row", lutmul::ActivationScaling::dynamic_per_row)
      .value("static_per_tensor", lutmul::ActivationScaling::static_per_tensor);

  py::enum_<lutmul::Int8Backend>(m, "Int8Backend")
      .value("automatic", lutmul::Int8Backend::automatic)
      .value("own_kernels", lutmul::Int8Backend::own_kernels)
      .value("onednn", lutmul::Int8Backend::onednn);

  const lutmul::Int8Config defaults;
  py::class_<lutmul::Int8Config>(m, "Int8Config")
      .def(py::init([](lutmul::ActivationScaling activations, double calibration_percentile, double smoothing,
                       lutmul::Int8Backend backend) {
             lutmul::Int8Config config;
             config.activations = activations;
             config.calibration_percentile = calibration_percentile;
             config.smoothing = smoothing;
             config.backend = backend;
             return config;
           }),
           py::kw_only(), py::arg_v("activations", defaults.activations, "ActivationScaling.dynamic_per_row"),
           py::arg("calibration_percentile") = defaults.calibration_percentile,
           py::arg("smoothing") = defaults.smoothing,
           py::arg_v("backend", defaults.backend, "Int8Backend.automatic"))
      .def_readwrite("activations", &lutmul::Int8Config::activations)
      .def_readwrite("calibration_percentile", &lutmul::Int8Config::calibration_percentile)
      .def_readwrite("smoothing", &lutmul::Int8Config::smoothing)
      .def_readwrite("backend", &lutmul::Int8Config::backend)
      .def("__repr__", [](const lutmul::Int8Config& c) {
        return "Int8Config(activations=" + std::string(py::repr(py::cast(c.activations))) +
               ", calibration_percentile=" + std::string(py::repr(py::float_(c.calibration_percentile))) +
               ", smoothing=" + std::string(py::repr(py::float_(c.smoothing))) +
               ", backend=" + std::string(py::repr(py::cast(c.backend))) + ")";
      });

  py::class_<lutmul::Int8Linear, lutmul::LinearOperator>(m, "Int8Linear")
      .def(py::init([](const py::array& w, const std::optional<py::array>& bias, const lutmul::Int8Config& config,
                       const std::optional<py::array>& calibration) {
             const lutmul::MatrixView view = matrix_view(w, "W");
             lutmul::MatrixView storage;
             return lutmul::Int8Linear(view, optional_bias(bias, view.cols), config,
                                       optional_matrix_view(calibration, storage));
           }),
           py::arg("w"), py::arg("bias") = py::none(), py::arg_v("config", defaults, "Int8Config()"),
           py::arg("calibration") = py::none())
      .def_property_readonly("static_activation_scale", &lutmul::Int8Linear::static_activation_scale)
      .def_property_readonly("smoothing", [](const lutmul::Int8Linear& op) { return op.config().smoothing; })
      .def_property_readonly("smoothing_factors",
                             [](const lutmul::Int8Linear& op) {
                               py::array_t<float> factors(op.input_dim());
                               for (int64_t k = 0; k < op.input_dim(); ++k) factors.mutable_at(k) = op.smoothing_factor(k);
                               return factors;
                             })
      .def_property_readonly("path", &lutmul::Int8Linear::path);
}
