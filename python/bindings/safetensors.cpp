// Files written by other tools: safetensors tensors and the PEFT adapter directories built
// on them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lutmul/io/peft_adapter.h>
#include <lutmul/io/safetensors.h>

#include <string>
#include <vector>

#include "arrays.h"

namespace py = pybind11;
using namespace lutmul::python;

void bind_safetensors(py::module_& m) {
  m.def("read_safetensors",
        [](const std::string& path) {
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
        },
        py::arg("path"));
  m.def("peft_modules", &lutmul::peft_modules, py::arg("directory"));
}
