// Pruning: SparseConfig, SparseLinear (unstructured), Sparse24Linear (2:4), prune_globally.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lutmul/operators/sparse24_linear.h>
#include <lutmul/operators/sparse_linear.h>

#include <optional>
#include <string>
#include <vector>

#include "arrays.h"

namespace py = pybind11;
using namespace lutmul::python;

namespace {

// The pruned weight of a pruning operator as a new K × M float32 array.
template <typename Op>
py::array_t<float> pruned_dense_array(const Op& op) {
  return copy_of(op.pruned_dense(), {op.input_dim(), op.output_dim()});
}

}  // namespace

void bind_sparse(py::module_& m) {
  const lutmul::SparseConfig defaults;
  py::class_<lutmul::SparseConfig>(m, "SparseConfig")
      .def(py::init([](double sparsity, int64_t kept_weights) {
             lutmul::SparseConfig config;
             config.sparsity = sparsity;
             config.kept_weights = kept_weights;
             return config;
           }),
           py::kw_only(), py::arg("sparsity") = defaults.sparsity, py::arg("kept_weights") = defaults.kept_weights)
      .def_readwrite("sparsity", &lutmul::SparseConfig::sparsity)
      .def_readwrite("kept_weights", &lutmul::SparseConfig::kept_weights)
      .def("__repr__", [](const lutmul::SparseConfig& c) {
        return "SparseConfig(sparsity=" + std::string(py::repr(py::float_(c.sparsity))) +
               ", kept_weights=" + std::to_string(c.kept_weights) + ")";
      });

  py::class_<lutmul::SparseLinear, lutmul::LinearOperator>(m, "SparseLinear")
      .def(py::init([](const py::array& w, const std::optional<py::array>& bias, const lutmul::SparseConfig& config,
                       const std::optional<py::array>& calibration) {
             const lutmul::MatrixView view = matrix_view(w, "W");
             lutmul::MatrixView storage;
             return lutmul::SparseLinear(view, optional_bias(bias, view.cols), config,
                                         optional_matrix_view(calibration, storage));
           }),
           py::arg("w"), py::arg("bias") = py::none(), py::arg_v("config", defaults, "SparseConfig()"),
           py::arg("calibration") = py::none())
      .def_property_readonly("nonzeros", &lutmul::SparseLinear::nonzeros)
      .def("pruned_dense", [](const lutmul::SparseLinear& op) { return pruned_dense_array(op); });

  py::class_<lutmul::Sparse24Linear, lutmul::LinearOperator>(m, "Sparse24Linear")
      .def(py::init([](const py::array& w, const std::optional<py::array>& bias,
                       const std::optional<py::array>& calibration) {
             const lutmul::MatrixView view = matrix_view(w, "W");
             lutmul::MatrixView storage;
             return lutmul::Sparse24Linear(view, optional_bias(bias, view.cols), optional_matrix_view(calibration, storage));
           }),
           py::arg("w"), py::arg("bias") = py::none(), py::arg("calibration") = py::none())
      .def("pruned_dense", [](const lutmul::Sparse24Linear& op) { return pruned_dense_array(op); });

  m.def("prune_globally",
        [](const std::vector<py::array>& weights, double sparsity, const std::vector<std::optional<py::array>>& biases,
           const std::vector<std::optional<py::array>>& calibrations) {
          std::vector<lutmul::MatrixView> views;
          for (const py::array& w : weights) views.push_back(matrix_view(w, "W"));
          if (!biases.empty() && biases.size() != views.size())
            throw py::value_error("prune_globally: one bias (or None) per layer, or none at all");
          if (!calibrations.empty() && calibrations.size() != views.size())
            throw py::value_error("prune_globally: one calibration array (or None) per layer, or none at all");
          std::vector<const float*> bias_pointers;
          for (size_t i = 0; i < biases.size(); ++i) bias_pointers.push_back(optional_bias(biases[i], views[i].cols));
          std::vector<lutmul::MatrixView> storage(calibrations.size());
          std::vector<const lutmul::MatrixView*> calibration_pointers;
          for (size_t i = 0; i < calibrations.size(); ++i)
            calibration_pointers.push_back(optional_matrix_view(calibrations[i], storage[i]));
          py::gil_scoped_release release;
          return lutmul::prune_globally(views, sparsity, bias_pointers, calibration_pointers);
        },
        py::arg("weights"), py::arg("sparsity"), py::arg("biases"), py::arg("calibrations"));
}
