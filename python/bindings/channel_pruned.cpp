// Structured pruning: PrunedChannels, ChannelPruningConfig, ChannelPrunedLinear.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lutmul/operators/channel_pruned_linear.h>

#include <optional>
#include <string>

#include "arrays.h"

namespace py = pybind11;
using namespace lutmul::python;

void bind_channel_pruned(py::module_& m) {
  py::enum_<lutmul::PrunedChannels>(m, "PrunedChannels")
      .value("outputs", lutmul::PrunedChannels::outputs)
      .value("inputs", lutmul::PrunedChannels::inputs);

  const lutmul::ChannelPruningConfig defaults;
  py::class_<lutmul::ChannelPruningConfig>(m, "ChannelPruningConfig")
      .def(py::init([](double fraction, lutmul::PrunedChannels channels) {
             lutmul::ChannelPruningConfig config;
             config.fraction = fraction;
             config.channels = channels;
             return config;
           }),
           py::kw_only(), py::arg("fraction") = defaults.fraction, py::arg_v("channels", defaults.channels, "PrunedChannels.outputs"))
      .def_readwrite("fraction", &lutmul::ChannelPruningConfig::fraction)
      .def_readwrite("channels", &lutmul::ChannelPruningConfig::channels)
      .def("__repr__", [](const lutmul::ChannelPruningConfig& c) {
        return "ChannelPruningConfig(fraction=" + std::string(py::repr(py::float_(c.fraction))) +
               ", channels=" + std::string(py::repr(py::cast(c.channels))) + ")";
      });

  py::class_<lutmul::ChannelPrunedLinear, lutmul::LinearOperator>(m, "ChannelPrunedLinear")
      .def(py::init([](const py::array& w, const std::optional<py::array>& bias,
                       const lutmul::ChannelPruningConfig& config) {
             const lutmul::MatrixView view = matrix_view(w, "W");
             return lutmul::ChannelPrunedLinear(view, optional_bias(bias, view.cols), config);
           }),
           py::arg("w"), py::arg("bias") = py::none(), py::arg_v("config", defaults, "ChannelPruningConfig()"))
      .def_property_readonly("kept_inputs", &lutmul::ChannelPrunedLinear::kept_inputs)
      .def_property_readonly("kept_outputs", &lutmul::ChannelPrunedLinear::kept_outputs);
}
