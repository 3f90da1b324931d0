// The inference runtime: lutmul._core.runtime.Encoder, a loaded sentence encoder that takes
// ragged batches of token ids (ids of all sequences back to back, one length per sequence).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <lutmul/runtime/encoder.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "arrays.h"

namespace py = pybind11;
using lutmul::runtime::Encoder;

namespace {

using Ids = py::array_t<int32_t, py::array::c_style>;
using Lengths = py::array_t<int64_t, py::array::c_style>;

// The batch as the encoder takes it; shapes checked here, values by the encoder.
struct Batch {
  const int32_t* ids;
  const int64_t* lengths;
  int64_t sequences;
  int64_t tokens;
};

Batch batch_of(const Ids& ids, const Lengths& lengths) {
  if (ids.ndim() != 1) throw py::value_error("ids must be a 1-D int32 array");
  if (lengths.ndim() != 1) throw py::value_error("lengths must be a 1-D int64 array");
  int64_t tokens = 0;
  for (py::ssize_t s = 0; s < lengths.shape(0); ++s) {
    const int64_t length = lengths.data()[s];
    if (length < 1) throw py::value_error("lengths[" + std::to_string(s) + "] = " + std::to_string(length) + " must be at least 1");
    tokens += length;
    if (tokens > ids.shape(0)) break;
  }
  if (tokens != ids.shape(0))
    throw py::value_error("the lengths add up to " + std::to_string(tokens) + (tokens > ids.shape(0) ? " or more" : "") +
                          " tokens, ids holds " + std::to_string(ids.shape(0)));
  return {ids.data(), lengths.data(), static_cast<int64_t>(lengths.shape(0)), tokens};
}

}  // namespace

void bind_runtime(py::module_& parent) {
  py::module_ m = parent.def_submodule("runtime", "the inference runtime (use lutmul.runtime, not this module)");
  py::class_<Encoder, std::shared_ptr<Encoder>>(m, "Encoder")
      .def_static("load",
                  [](const std::string& path, const std::string& precision) {
                    const lutmul::runtime::Precision p = lutmul::runtime::parse_precision(precision);
                    py::gil_scoped_release release;
                    return Encoder::load(path, p);
                  },
                  py::arg("path"), py::arg("precision") = "f32",
                  "Loads a BERT sentence encoder folder (config.json, model.safetensors, modules.json); precision "
                  "'f32' (DenseLinear layers) or 'bf16' (Bf16Linear layers). Or an encoder file written by save() "
                  "(precision 'f32': its layers keep their operators).")
      .def("embed_ids",
           [](const Encoder& self, const Ids& ids, const Lengths& lengths) {
             const Batch b = batch_of(ids, lengths);
             py::array_t<float> out({static_cast<py::ssize_t>(b.sequences), static_cast<py::ssize_t>(self.hidden_size())});
             float* data = out.mutable_data();
             {
               py::gil_scoped_release release;
               self.embed(b.ids, b.lengths, b.sequences, data);
             }
             return out;
           },
           py::arg("ids"), py::arg("lengths"),
           "Pooled embeddings (n, H) of a ragged batch: ids (int32) of all n sequences back to back, lengths (int64).")
      .def("hidden_states_ids",
           [](const Encoder& self, const Ids& ids, const Lengths& lengths) {
             const Batch b = batch_of(ids, lengths);
             py::array_t<float> out({static_cast<py::ssize_t>(b.tokens), static_cast<py::ssize_t>(self.hidden_size())});
             float* data = out.mutable_data();
             {
               py::gil_scoped_release release;
               self.hidden_states(b.ids, b.lengths, b.sequences, data);
             }
             return out;
           },
           py::arg("ids"), py::arg("lengths"), "Last hidden states (sum(lengths), H) of a ragged batch.")
      .def("layer_inputs_ids",
           [](const Encoder& self, const Ids& ids, const Lengths& lengths, int block, const std::string& name) {
             const Batch b = batch_of(ids, lengths);
             const int64_t width = self.linear(block, name)->input_dim();  // checks block and name
             py::array_t<float> out({static_cast<py::ssize_t>(b.tokens), static_cast<py::ssize_t>(width)});
             float* data = out.mutable_data();
             {
               py::gil_scoped_release release;
               self.layer_inputs(b.ids, b.lengths, b.sequences, block, name, data);
             }
             return out;
           },
           py::arg("ids"), py::arg("lengths"), py::arg("block"), py::arg("name"),
           "The rows (sum(lengths), input size) that layer (block, name) reads for this ragged batch, as this "
           "encoder computes them.")
      .def("embed_from_block",
           [](const Encoder& self, int block, const py::array_t<float, py::array::c_style>& hidden, const Lengths& lengths) {
             if (lengths.ndim() != 1) throw py::value_error("lengths must be a 1-D int64 array");
             int64_t tokens = 0;
             for (py::ssize_t s = 0; s < lengths.shape(0); ++s) tokens += std::max<int64_t>(0, lengths.data()[s]);
             if (hidden.ndim() != 2 || hidden.shape(0) != tokens || hidden.shape(1) != self.hidden_size())
               throw py::value_error("hidden must be (sum(lengths), hidden_size) float32");
             py::array_t<float> out({static_cast<py::ssize_t>(lengths.shape(0)), static_cast<py::ssize_t>(self.hidden_size())});
             float* data = out.mutable_data();
             {
               py::gil_scoped_release release;
               self.embed_from_block(block, hidden.data(), lengths.data(), static_cast<int64_t>(lengths.shape(0)), data);
             }
             return out;
           },
           py::arg("block"), py::arg("hidden"), py::arg("lengths"),
           "Embeddings from the hidden states entering `block` (as layer_inputs_ids(..., block, 'query') gives them).")
      .def("hidden_through_blocks",
           [](const Encoder& self, int first, int last, const py::array_t<float, py::array::c_style>& hidden,
              const Lengths& lengths) {
             if (lengths.ndim() != 1) throw py::value_error("lengths must be a 1-D int64 array");
             int64_t tokens = 0;
             for (py::ssize_t s = 0; s < lengths.shape(0); ++s) tokens += std::max<int64_t>(0, lengths.data()[s]);
             if (hidden.ndim() != 2 || hidden.shape(0) != tokens || hidden.shape(1) != self.hidden_size())
               throw py::value_error("hidden must be (sum(lengths), hidden_size) float32");
             py::array_t<float> out({static_cast<py::ssize_t>(tokens), static_cast<py::ssize_t>(self.hidden_size())});
             float* data = out.mutable_data();
             {
               py::gil_scoped_release release;
               self.hidden_through_blocks(first, last, hidden.data(), lengths.data(),
                                          static_cast<int64_t>(lengths.shape(0)), data);
             }
             return out;
           },
           py::arg("first"), py::arg("last"), py::arg("hidden"), py::arg("lengths"),
           "The hidden states leaving block last - 1 from those entering block `first` (blocks first..last-1 only; "
           "a pipeline stage runs this).")
      .def("save",
           [](const Encoder& self, const std::string& path, const std::map<std::string, std::string>& metadata) {
             py::gil_scoped_release release;
             self.save(path, metadata);
           },
           py::arg("path"), py::arg("metadata") = std::map<std::string, std::string>{},
           "Writes the whole encoder (every layer's operator) and text metadata to one file, atomically.")
      .def("keep_blocks", &Encoder::keep_blocks, py::arg("first"), py::arg("last"),
           "A new encoder holding only blocks first..last-1 (and the embedding tables only when first is 0): a "
           "pipeline stage's weights.")
      .def_property_readonly("held_blocks",
                             [](const Encoder& self) { return py::make_tuple(self.held_first(), self.held_last()); },
                             "(first, last): the blocks this encoder holds (all, unless keep_blocks made it).")
      .def_property_readonly("bytes", &Encoder::bytes, "Bytes of the weights this encoder holds.")
      .def_property_readonly("metadata", &Encoder::metadata, "Text by name stored with a saved encoder.")
      .def_property_readonly("hidden_size", &Encoder::hidden_size)
      .def_property_readonly("vocab_size", [](const Encoder& self) { return self.config().vocab_size; })
      .def_property_readonly("max_position_embeddings", [](const Encoder& self) { return self.config().max_position_embeddings; })
      .def_property_readonly("max_sequence_length", &Encoder::max_sequence_length)
      .def_property_readonly("num_layers", [](const Encoder& self) { return self.config().num_hidden_layers; })
      .def_property_readonly("num_heads", [](const Encoder& self) { return self.config().num_attention_heads; })
      .def_property_readonly("intermediate_size", [](const Encoder& self) { return self.config().intermediate_size; })
      .def_property_readonly("pooling", [](const Encoder& self) { return lutmul::runtime::pooling_name(self.pooling()); })
      .def_property_readonly("normalize", &Encoder::normalize)
      .def_property_readonly("path", &Encoder::path)
      .def("describe", &Encoder::describe, "Architecture, pooling, each linear layer's operator and bytes.")
      .def("linear_layers",
           [](const Encoder& self) {
             std::vector<std::pair<int, std::string>> out;
             for (const lutmul::runtime::LinearSlot& slot : self.linear_layers()) out.emplace_back(slot.block, slot.name);
             return out;
           })
      // The operator stays owned by the encoder: the returned object keeps the encoder alive.
      // The operator stays owned by the encoder; the returned object (the most derived bound
      // class) keeps the encoder alive.
      .def("linear",
           [](const Encoder& self, int block, const std::string& name) { return self.linear(block, name).get(); },
           py::arg("block"), py::arg("name"), py::return_value_policy::reference, py::keep_alive<0, 1>(),
           "The operator of a linear layer (name: query, key, value, attn_out, ffn_in, ffn_out).")
      .def("with_linear",
           [](const Encoder& self, int block, const std::string& name, const lutmul::LinearOperator* raw) {
             if (raw == nullptr) throw py::value_error("the operator is None");
             // The Python object that owns the operator (pybind11 finds the existing one) is kept
             // alive as long as the new encoder needs it, and let go of under the GIL.
             auto* keeper = new py::object(py::cast(raw, py::return_value_policy::reference));
             std::shared_ptr<const lutmul::LinearOperator> shared(raw, [keeper](const lutmul::LinearOperator*) {
               py::gil_scoped_acquire gil;
               delete keeper;
             });
             return self.with_linear(block, name, std::move(shared));
           },
           py::arg("block"), py::arg("name"), py::arg("op"),
           "A new encoder sharing everything but this layer, which becomes op (same input and output sizes).");
}
