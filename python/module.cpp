// pybind11 bindings: thin, zero-copy, GIL released in every heavy call. The Pythonic
// surface (dtype and layout handling, docstrings) lives in lutmul/__init__.py.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lutmul/lutmul.h>

#include <cstring>

namespace py = pybind11;
using lutmul::Maddness;
using lutmul::MatrixView;

namespace {

// A float32 array used in place: C-contiguous → row-major, F-contiguous → column-major,
// other strides with unit element stride along one axis → that layout with a leading
// dimension. Anything else is rejected (the Python layer converts first).
MatrixView view_of(const py::array& array, const char* name) {
  if (!py::isinstance<py::array_t<float>>(array) || array.dtype().kind() != 'f' || array.itemsize() != 4)
    throw py::type_error(std::string(name) + " must be a float32 array");
  if (array.ndim() != 2) throw py::value_error(std::string(name) + " must be 2-D, got " + std::to_string(array.ndim()) + "-D");
  const auto rows = static_cast<int64_t>(array.shape(0)), cols = static_cast<int64_t>(array.shape(1));
  const auto s0 = static_cast<int64_t>(array.strides(0)), s1 = static_cast<int64_t>(array.strides(1));
  const auto* data = static_cast<const float*>(array.data());
  if (rows == 0 || cols == 0) return MatrixView::row_major(data, rows, cols, cols > 0 ? cols : 1);  // numpy gives no strides
  if ((s1 == 4 || cols <= 1) && s0 % 4 == 0 && s0 / 4 >= cols) return MatrixView::row_major(data, rows, cols, s0 / 4 > 0 ? s0 / 4 : 1);
  if ((s0 == 4 || rows <= 1) && s1 % 4 == 0 && s1 / 4 >= rows) return MatrixView::col_major(data, rows, cols, s1 / 4 > 0 ? s1 / 4 : 1);
  throw py::value_error(std::string(name) + " has strides the kernels cannot read in place");
}

// A read-only numpy view of a model's vector, kept alive by the model object.
template <typename T>
py::array readonly_view(const std::vector<T>& values, std::vector<py::ssize_t> shape, py::handle owner) {
  py::array out(py::dtype::of<T>(), shape, {}, values.data(), owner);
  py::detail::array_proxy(out.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return out;
}

}  // namespace

// Y = op(X) into a caller's row-major float32 array (checked), GIL released.
void forward_into(const lutmul::LinearOperator& op, const py::array& x, py::array& y) {
  const MatrixView view = view_of(x, "X");
  const bool empty = y.ndim() == 2 && y.shape(0) == 0;
  if (y.ndim() != 2 || y.dtype().kind() != 'f' || y.itemsize() != 4 || !y.writeable() || y.shape(0) != x.shape(0) ||
      y.shape(1) != op.output_dim() ||
      (!empty && (y.strides(1) != 4 || y.strides(0) % 4 != 0 || y.strides(0) / 4 < op.output_dim())))
    throw py::value_error("out must be a writable row-major float32 array of shape (" + std::to_string(x.shape(0)) +
                          ", " + std::to_string(op.output_dim()) + ")");
  if (x.shape(0) == 0) return;
  float* out = static_cast<float*>(y.mutable_data());
  const int64_t ldy = y.shape(0) > 1 ? y.strides(0) / 4 : op.output_dim();
  py::gil_scoped_release release;
  op.forward(view, out, ldy);
}

// The pruned weight of a pruning operator as a new K × M float32 array.
template <typename Op>
py::array_t<float> pruned_dense_array(const Op& op) {
  const std::vector<float> w = op.pruned_dense();
  py::array_t<float> out({op.input_dim(), op.output_dim()});
  std::memcpy(out.mutable_data(), w.data(), w.size() * sizeof(float));
  return out;
}

const float* optional_bias(const std::optional<py::array>& bias, int64_t m) {
  if (!bias) return nullptr;
  if (bias->ndim() != 1 || bias->shape(0) != m || bias->dtype().kind() != 'f' || bias->itemsize() != 4 || bias->strides(0) != 4)
    throw py::value_error("bias must be a contiguous float32 vector of length M = " + std::to_string(m));
  return static_cast<const float*>(bias->data());
}

// A view of optional calibration rows; `storage` keeps the view alive for the call.
const MatrixView* optional_view(const std::optional<py::array>& rows, MatrixView& storage) {
  if (!rows) return nullptr;
  storage = view_of(*rows, "calibration");
  return &storage;
}

void bind_lowrank_lora(py::module_& m);  // bind_lowrank_lora.cpp

PYBIND11_MODULE(_core, m) {
  m.doc() = "lutmul C++ core (use the lutmul package, not this module)";
  py::register_exception<lutmul::Error>(m, "LutmulError", PyExc_ValueError);

  m.def("isa", [] { return lutmul::isa_name(lutmul::active_isa()); });
  m.def("supported_isas", [] {
    std::vector<std::string> names;
    for (auto isa : lutmul::supported_isas()) names.push_back(lutmul::isa_name(isa));
    return names;
  });
  m.def("set_isa", [](const std::string& name) { lutmul::set_isa(lutmul::parse_isa(name)); });
  m.def("set_num_threads", &lutmul::set_num_threads);
  m.def("num_threads", &lutmul::num_threads);

  py::class_<lutmul::LinearOperator>(m, "LinearOperator")
      .def_property_readonly("kind", &lutmul::LinearOperator::kind)
      .def_property_readonly("input_dim", &lutmul::LinearOperator::input_dim)
      .def_property_readonly("output_dim", &lutmul::LinearOperator::output_dim)
      .def_property_readonly("bytes", &lutmul::LinearOperator::bytes)
      .def_property_readonly("multiply_adds_per_row", &lutmul::LinearOperator::multiply_adds_per_row)
      .def("forward_into", &forward_into)
      .def("save",
           [](const lutmul::LinearOperator& op, const std::string& path) {
             py::gil_scoped_release release;
             op.save(path);
           })
      .def("serialize", [](const lutmul::LinearOperator& op) {
        const std::vector<uint8_t> bytes = op.serialize();
        return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      });
  // pybind11 hands back the most derived registered class of what these return.
  m.def("load_operator", [](const std::string& path) {
    py::gil_scoped_release release;
    return lutmul::LinearOperator::load(path);
  });
  m.def("deserialize_operator", [](const py::bytes& data) {
    const std::string_view view(data);
    return lutmul::LinearOperator::deserialize(reinterpret_cast<const uint8_t*>(view.data()), view.size());
  });

  py::class_<lutmul::DenseLinear, lutmul::LinearOperator>(m, "DenseLinear")
      .def(py::init([](const py::array& w, const std::optional<py::array>& bias) {
        const MatrixView view = view_of(w, "W");
        return lutmul::DenseLinear(view, optional_bias(bias, view.cols));
      }));

  py::class_<lutmul::Int8Linear, lutmul::LinearOperator>(m, "Int8Linear")
      .def(py::init([](const py::array& w, const std::optional<py::array>& bias, bool static_scaling, double percentile,
                       const std::optional<py::array>& calibration) {
        const MatrixView view = view_of(w, "W");
        lutmul::Int8Config config;
        config.activations = static_scaling ? lutmul::ActivationScaling::static_per_tensor
                                            : lutmul::ActivationScaling::dynamic_per_row;
        config.calibration_percentile = percentile;
        MatrixView storage;
        return lutmul::Int8Linear(view, optional_bias(bias, view.cols), config, optional_view(calibration, storage));
      }))
      .def_property_readonly("static_activation_scale", &lutmul::Int8Linear::static_activation_scale);

  py::class_<lutmul::SparseLinear, lutmul::LinearOperator>(m, "SparseLinear")
      .def(py::init([](const py::array& w, const std::optional<py::array>& bias, double sparsity,
                       const std::optional<py::array>& calibration) {
        const MatrixView view = view_of(w, "W");
        lutmul::SparseConfig config;
        config.sparsity = sparsity;
        MatrixView storage;
        return lutmul::SparseLinear(view, optional_bias(bias, view.cols), config, optional_view(calibration, storage));
      }))
      .def_property_readonly("nonzeros", &lutmul::SparseLinear::nonzeros)
      .def("pruned_dense", [](const lutmul::SparseLinear& op) { return pruned_dense_array(op); });

  py::class_<lutmul::Sparse24Linear, lutmul::LinearOperator>(m, "Sparse24Linear")
      .def(py::init([](const py::array& w, const std::optional<py::array>& bias,
                       const std::optional<py::array>& calibration) {
        const MatrixView view = view_of(w, "W");
        MatrixView storage;
        return lutmul::Sparse24Linear(view, optional_bias(bias, view.cols), optional_view(calibration, storage));
      }))
      .def("pruned_dense", [](const lutmul::Sparse24Linear& op) { return pruned_dense_array(op); });

  m.def("prune_globally", [](const std::vector<py::array>& weights, double sparsity,
                             const std::vector<std::optional<py::array>>& biases,
                             const std::vector<std::optional<py::array>>& calibrations) {
    std::vector<MatrixView> views;
    for (const py::array& w : weights) views.push_back(view_of(w, "W"));
    if (!biases.empty() && biases.size() != views.size())
      throw py::value_error("prune_globally: one bias (or None) per layer, or none at all");
    if (!calibrations.empty() && calibrations.size() != views.size())
      throw py::value_error("prune_globally: one calibration array (or None) per layer, or none at all");
    std::vector<const float*> bias_pointers;
    for (size_t i = 0; i < biases.size(); ++i) bias_pointers.push_back(optional_bias(biases[i], views[i].cols));
    std::vector<MatrixView> storage(calibrations.size());
    std::vector<const MatrixView*> calibration_pointers;
    for (size_t i = 0; i < calibrations.size(); ++i) calibration_pointers.push_back(optional_view(calibrations[i], storage[i]));
    py::gil_scoped_release release;
    return lutmul::prune_globally(views, sparsity, bias_pointers, calibration_pointers);
  });

  py::class_<lutmul::ChannelPrunedLinear, lutmul::LinearOperator>(m, "ChannelPrunedLinear")
      .def(py::init([](const py::array& w, const std::optional<py::array>& bias, double fraction, bool inputs) {
        const MatrixView view = view_of(w, "W");
        lutmul::ChannelPruningConfig config;
        config.fraction = fraction;
        config.channels = inputs ? lutmul::PrunedChannels::inputs : lutmul::PrunedChannels::outputs;
        return lutmul::ChannelPrunedLinear(view, optional_bias(bias, view.cols), config);
      }))
      .def_property_readonly("kept_inputs", &lutmul::ChannelPrunedLinear::kept_inputs)
      .def_property_readonly("kept_outputs", &lutmul::ChannelPrunedLinear::kept_outputs);

  py::class_<lutmul::MaddnessLinear, lutmul::LinearOperator>(m, "MaddnessLinear")
      .def(py::init([](const py::array& w, const std::optional<py::array>& bias, const py::array& calibration,
                       int ncodebooks) {
        const MatrixView view = view_of(w, "W");
        const MatrixView rows = view_of(calibration, "calibration");
        const float* b = optional_bias(bias, view.cols);
        lutmul::MaddnessConfig config;
        config.ncodebooks = ncodebooks;
        py::gil_scoped_release release;
        return lutmul::MaddnessLinear(view, b, rows, config);
      }))
      .def_property_readonly("ncodebooks", [](const lutmul::MaddnessLinear& op) { return op.model().ncodebooks(); });

  py::class_<Maddness>(m, "Maddness")
      .def(py::init([](int ncodebooks, int split_candidates, bool ridge, std::vector<double> lambdas, double heldout,
                       uint64_t seed, bool averaged, bool float_tables) {
             lutmul::MaddnessConfig c;
             c.ncodebooks = ncodebooks;
             c.split_candidates = split_candidates;
             c.prototypes = ridge ? lutmul::PrototypeMethod::ridge : lutmul::PrototypeMethod::bucket_means;
             c.ridge_lambdas = std::move(lambdas);
             c.heldout_fraction = heldout;
             c.seed = seed;
             c.accumulation = averaged ? lutmul::Accumulation::averaged : lutmul::Accumulation::exact;
             c.tables = float_tables ? lutmul::TableMode::float32 : lutmul::TableMode::uint8;
             return Maddness(c);
           }),
           py::arg("ncodebooks"), py::arg("split_candidates"), py::arg("ridge"), py::arg("ridge_lambdas"),
           py::arg("heldout_fraction"), py::arg("seed"), py::arg("averaged"), py::arg("float_tables"))
      .def("fit_encoder",
           [](Maddness& self, const py::array& a, const std::function<void(const std::string&, int64_t, int64_t)>& progress) {
             const MatrixView view = view_of(a, "A_train");
             lutmul::ProgressCallback callback;
             if (progress) {
               callback = [&progress](const std::string& stage, int64_t done, int64_t total) {
                 py::gil_scoped_acquire gil;
                 progress(stage, done, total);
               };
             }
             py::gil_scoped_release release;
             self.fit_encoder(view, callback);
           },
           py::arg("a"), py::arg("progress") = nullptr)
      .def("fit",
           [](Maddness& self, const py::array& a, const py::array& b, const std::optional<py::array>& bias,
              const std::function<void(const std::string&, int64_t, int64_t)>& progress) {
             const MatrixView a_view = view_of(a, "A_train");
             const MatrixView b_view = view_of(b, "B");
             const float* bias_data = nullptr;
             if (bias) bias_data = static_cast<const float*>(bias->data());  // checked by the Python layer
             lutmul::ProgressCallback callback;
             if (progress) {
               callback = [&progress](const std::string& stage, int64_t done, int64_t total) {
                 py::gil_scoped_acquire gil;
                 progress(stage, done, total);
               };
             }
             py::gil_scoped_release release;
             self.fit(a_view, b_view, bias_data, callback);
           },
           py::arg("a"), py::arg("b"), py::arg("bias"), py::arg("progress") = nullptr)
      .def("set_weights",
           [](Maddness& self, const py::array& b, const std::optional<py::array>& bias) {
             const MatrixView view = view_of(b, "B");
             const float* bias_data = nullptr;
             if (bias) {
               if (bias->ndim() != 1 || bias->shape(0) != b.shape(1) || bias->dtype().kind() != 'f' || bias->itemsize() != 4 ||
                   bias->strides(0) != 4)
                 throw py::value_error("bias must be a contiguous float32 vector of length M = " + std::to_string(b.shape(1)));
               bias_data = static_cast<const float*>(bias->data());
             }
             py::gil_scoped_release release;
             self.set_weights(view, bias_data);
           },
           py::arg("b"), py::arg("bias") = py::none())
      .def("matmul_into",
           [](const Maddness& self, const py::array& a, py::array& y) {
             const MatrixView view = view_of(a, "A");
             const bool empty = y.ndim() == 2 && y.shape(0) == 0;
             if (y.ndim() != 2 || y.dtype().kind() != 'f' || y.itemsize() != 4 || !y.writeable() ||
                 y.shape(0) != a.shape(0) || y.shape(1) != self.output_dim() ||
                 (!empty && (y.strides(1) != 4 || y.strides(0) % 4 != 0 || y.strides(0) / 4 < self.output_dim())))
               throw py::value_error("out must be a writable row-major float32 array of shape (" +
                                     std::to_string(a.shape(0)) + ", " + std::to_string(self.output_dim()) + ")");
             if (a.shape(0) == 0) return;
             float* out = static_cast<float*>(y.mutable_data());
             const int64_t ldy = y.shape(0) > 1 ? y.strides(0) / 4 : self.output_dim();
             py::gil_scoped_release release;
             self.matmul(view, out, ldy);
           })
      .def("encode",
           [](const Maddness& self, const py::array& a) {
             const MatrixView view = view_of(a, "A");
             lutmul::EncodedRows codes;
             {
               py::gil_scoped_release release;
               self.encode(view, codes);
             }
             py::array_t<uint8_t> out({codes.rows(), static_cast<int64_t>(codes.ncodebooks())});
             const std::vector<uint8_t> flat = codes.unpacked();
             std::memcpy(out.mutable_data(), flat.data(), flat.size());
             return out;
           })
      .def("scan",
           [](const Maddness& self, const py::array_t<uint8_t, py::array::c_style>& codes, py::array& y) {
             if (codes.ndim() != 2 || codes.shape(1) != self.ncodebooks())
               throw py::value_error("codes must have shape (N, " + std::to_string(self.ncodebooks()) + ")");
             lutmul::EncodedRows packed(codes.shape(0), self.ncodebooks());
             const uint8_t* c = codes.data();
             for (int64_t r = 0; r < codes.shape(0); ++r)
               for (int k = 0; k < self.ncodebooks(); ++k) packed.set_code(r, k, c[r * self.ncodebooks() + k]);
             float* out = static_cast<float*>(y.mutable_data());
             py::gil_scoped_release release;
             self.scan(packed, out, self.output_dim());
           })
      .def("set_accumulation",
           [](Maddness& self, bool averaged) {
             self.set_accumulation(averaged ? lutmul::Accumulation::averaged : lutmul::Accumulation::exact);
           })
      .def("set_float_tables",
           [](Maddness& self, bool on) { self.set_table_mode(on ? lutmul::TableMode::float32 : lutmul::TableMode::uint8); })
      .def_property_readonly("encoder_fitted", &Maddness::encoder_fitted)
      .def_property_readonly("has_weights", &Maddness::has_weights)
      .def_property_readonly("input_dim", &Maddness::input_dim)
      .def_property_readonly("output_dim", &Maddness::output_dim)
      .def_property_readonly("ncodebooks", &Maddness::ncodebooks)
      .def_property_readonly("averaged", [](const Maddness& s) { return s.config().accumulation == lutmul::Accumulation::averaged; })
      .def_property_readonly("float_tables_mode", [](const Maddness& s) { return s.config().tables == lutmul::TableMode::float32; })
      .def_property_readonly("chosen_ridge_lambda", &Maddness::chosen_ridge_lambda)
      .def("table_scales",
           [](const Maddness& s) {
             py::array_t<float> out(static_cast<py::ssize_t>(s.output_dim()));
             for (int64_t m = 0; m < s.output_dim(); ++m) out.mutable_at(m) = s.table_scale(m);
             return out;
           })
      .def("table_offsets",
           [](const Maddness& s) {
             py::array_t<double> out(static_cast<py::ssize_t>(s.output_dim()));
             for (int64_t m = 0; m < s.output_dim(); ++m) out.mutable_at(m) = s.table_offset(m);
             return out;
           })
      .def("split_dims",
           [](const Maddness& s) {
             py::array_t<int32_t> out({static_cast<int64_t>(s.ncodebooks()), int64_t{4}});
             for (int c = 0; c < s.ncodebooks(); ++c)
               for (int t = 0; t < 4; ++t) out.mutable_at(c, t) = s.split_dim(c, t);
             return out;
           })
      .def("prototypes_view",
           [](py::object self) {
             const auto& s = self.cast<const Maddness&>();
             return readonly_view(s.prototypes(), {s.ncodebooks(), 16, static_cast<py::ssize_t>(s.input_dim())}, self);
           })
      .def("float_tables_view",
           [](py::object self) {
             const auto& s = self.cast<const Maddness&>();
             return readonly_view(s.float_tables(), {static_cast<py::ssize_t>(s.output_dim()), s.ncodebooks(), 16}, self);
           })
      .def("quantized_tables_view",
           [](py::object self) {
             const auto& s = self.cast<const Maddness&>();
             return readonly_view(s.quantized_tables(),
                                  {static_cast<py::ssize_t>(s.output_dim()), (s.ncodebooks() + 1) / 2, 32}, self);
           })
      .def("save",
           [](const Maddness& s, const std::string& path) {
             py::gil_scoped_release release;
             s.save(path);
           })
      .def_static("load",
                  [](const std::string& path) {
                    py::gil_scoped_release release;
                    return Maddness::load(path);
                  })
      .def("serialize",
           [](const Maddness& s) {
             const std::vector<uint8_t> bytes = s.serialize();
             return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
           })
      .def_static("deserialize", [](const py::bytes& data) {
        const std::string_view view(data);
        return Maddness::deserialize(reinterpret_cast<const uint8_t*>(view.data()), view.size());
      });
  bind_lowrank_lora(m);
}
