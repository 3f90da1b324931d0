// The pybind11 module lutmul._core: thin, zero-copy, GIL released in every heavy call. One
// binding file per operator family (each registers its config structs and enums too); the
// Pythonic surface (dtype and layout handling, docstrings) lives in the lutmul package.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lutmul/core/error.h>
#include <lutmul/core/isa.h>
#include <lutmul/core/threading.h>
#include <lutmul/core/version.h>

#include <string>
#include <vector>

namespace py = pybind11;

// Each family's binding file (operator.cpp first: the others derive from LinearOperator).
void bind_operator(py::module_& m);
void bind_dense(py::module_& m);
void bind_int8(py::module_& m);
void bind_sparse(py::module_& m);
void bind_channel_pruned(py::module_& m);
void bind_maddness(py::module_& m);
void bind_lowrank(py::module_& m);
void bind_lora(py::module_& m);
void bind_safetensors(py::module_& m);
void bind_runtime(py::module_& m);  // the submodule lutmul._core.runtime

PYBIND11_MODULE(_core, m) {
  m.doc() = "lutmul C++ core (use the lutmul package, not this module)";
  m.attr("__version__") = LUTMUL_VERSION;
  py::register_exception<lutmul::Error>(m, "LutmulError", PyExc_ValueError);

  m.def("isa", [] { return lutmul::isa_name(lutmul::active_isa()); });
  m.def("supported_isas", [] {
    std::vector<std::string> names;
    for (auto isa : lutmul::supported_isas()) names.push_back(lutmul::isa_name(isa));
    return names;
  });
  m.def("set_isa", [](const std::string& name) { lutmul::set_isa(lutmul::parse_isa(name)); }, py::arg("name"));
  m.def("set_num_threads", &lutmul::set_num_threads, py::arg("n"));
  m.def("num_threads", &lutmul::num_threads);

  bind_operator(m);
  bind_dense(m);
  bind_int8(m);
  bind_sparse(m);
  bind_channel_pruned(m);
  bind_maddness(m);
  bind_lowrank(m);
  bind_lora(m);
  bind_safetensors(m);
  bind_runtime(m);
}
