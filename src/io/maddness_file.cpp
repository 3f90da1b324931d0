// MADDNESS models in files: an operator file (src/io/operator_file.cpp) of kind
// "maddness" whose payload is a model format version, then the trained encoder, prototypes
// and tables. Earlier releases wrote the same state inside a container of its own (magic
// "LUTMULMD"), standalone or nested whole in an operator file's payload; both are still read.
#include <cmath>

#include <cstring>

#include "core/file_format.h"
#include "io/operator_file.h"
#include "lutmul/core/error.h"
#include "lutmul/operators/maddness.h"

namespace lutmul {
namespace {

constexpr detail::Magic kLegacyMagic = {'L', 'U', 'T', 'M', 'U', 'L', 'M', 'D'};
// Version 3: the number of leaves per tree (16 or 64), after the table mode; written only
// for 64-leaf models, so 16-leaf files stay readable by releases that read version 2.
// Version 2: a scale and an offset per output (version 1: one scale, an offset per codebook;
// still read, and predicts exactly as it did).
constexpr uint32_t kFormatVersion = 3;
constexpr uint32_t kSixteenLeafVersion = 2;
constexpr uint32_t kOldestVersion = 1;

using detail::check_all_finite;
using Reader = detail::ByteReader;

bool is_legacy_container(const uint8_t* data, size_t size) {
  LUTMUL_CHECK(data != nullptr || size == 0, "deserialize: null data");  // before the magic is compared
  return size >= sizeof(kLegacyMagic) && std::memcmp(data, kLegacyMagic, sizeof(kLegacyMagic)) == 0;
}

}  // namespace

std::vector<uint8_t> Maddness::payload(SavedAs saved_as) const {
  LUTMUL_CHECK(encoder_fitted(), "save: the model is not fitted");
  const bool wide = config_.leaves != 16;
  detail::ByteWriter w;
  w.put_fields(wide ? kFormatVersion : kSixteenLeafVersion, static_cast<uint8_t>(saved_as), int32_t{config_.ncodebooks},
               int32_t{config_.split_candidates}, static_cast<int32_t>(config_.prototypes), config_.heldout_fraction,
               uint64_t{config_.seed}, static_cast<int32_t>(config_.accumulation), static_cast<int32_t>(config_.tables));
  if (wide) w.put_fields(int32_t{config_.leaves});
  w.put_fields(config_.ridge_lambdas, int64_t{input_dim_}, int64_t{output_dim_}, chosen_lambda_, subspace_begin_,
               split_dims_, thresholds_, prototypes_, float_tables_, quantized_tables_, table_scales_, table_offsets_,
               bias_);
  return std::move(w.bytes());
}

Maddness Maddness::from_payload(const uint8_t* data, size_t size) {
  if (is_legacy_container(data, size)) {  // 0.1 and 0.2 nested the whole model file
    const detail::VersionedPayload file =
        detail::unwrap_versioned_payload(data, size, kLegacyMagic, kOldestVersion, kFormatVersion, "model file");
    Reader r(file.data, file.size);
    return read_state(r, file.version);
  }
  Reader r(data, size, "model file");
  const uint32_t version = r.get<uint32_t>("model format version");
  LUTMUL_CHECK(version >= kOldestVersion && version <= kFormatVersion, "model file format version ", version,
               " is not supported (this lutmul reads ", kOldestVersion, " to ", kFormatVersion, ")");
  const uint8_t saved_as = r.get<uint8_t>("saved as");
  LUTMUL_CHECK(saved_as <= 1, "model file is corrupt: saved as ", int{saved_as});
  return read_state(r, version);
}

Maddness Maddness::read_state(detail::ByteReader& r, uint32_t version) {
  MaddnessConfig config;
  config.ncodebooks = r.get<int32_t>("ncodebooks");
  config.split_candidates = r.get<int32_t>("split_candidates");
  const int32_t prototypes = r.get<int32_t>("prototypes");
  config.heldout_fraction = r.get<double>("heldout_fraction");
  config.seed = r.get<uint64_t>("seed");
  const int32_t accumulation = r.get<int32_t>("accumulation");
  const int32_t tables = r.get<int32_t>("tables");
  LUTMUL_CHECK(prototypes >= 0 && prototypes <= 1 && accumulation >= 0 && accumulation <= 1 && tables >= 0 && tables <= 1,
               "model file is corrupt: unknown enum value");
  config.prototypes = static_cast<PrototypeMethod>(prototypes);
  config.accumulation = static_cast<Accumulation>(accumulation);
  config.tables = static_cast<TableMode>(tables);
  if (version >= 3) {
    config.leaves = r.get<int32_t>("leaves");
    LUTMUL_CHECK(config.leaves == 16 || config.leaves == 64, "model file is corrupt: ", config.leaves, " leaves per tree");
  }
  const uint64_t nlambdas = r.get<uint64_t>("ridge_lambdas size");
  LUTMUL_CHECK(nlambdas <= 1024, "model file is corrupt: ", nlambdas, " ridge lambdas");
  for (uint64_t i = 0; i < nlambdas; ++i) config.ridge_lambdas.push_back(r.get<double>("ridge_lambdas"));
  Maddness model(config);  // validates the config

  const int64_t d = r.get<int64_t>("input_dim");
  const int64_t m = r.get<int64_t>("output_dim");
  const int64_t c = config.ncodebooks;
  LUTMUL_CHECK(d >= c && d <= INT32_MAX && m >= 0 && m <= INT32_MAX, "model file is corrupt: D = ", d, ", M = ", m,
               ", C = ", c);
  model.input_dim_ = d;
  model.output_dim_ = m;
  model.chosen_lambda_ = r.get<double>("chosen_lambda");
  const uint64_t depth = static_cast<uint64_t>(model.tree_depth()), leaves = static_cast<uint64_t>(config.leaves);
  // Table bytes per output: codebook pairs of 16 entries, or a codebook of 64.
  const uint64_t table_bytes = leaves == 16 ? static_cast<uint64_t>((c + 1) / 2) * 32 : static_cast<uint64_t>(c) * 64;
  const uint64_t uc = static_cast<uint64_t>(c), ud = static_cast<uint64_t>(d), um = static_cast<uint64_t>(m);
  // Products of three dimensions of up to 2^31 each: checked, never wrapped.
  const char* what = "model file";
  model.subspace_begin_ = r.get_array<int64_t>("subspace bounds", uc + 1);
  model.split_dims_ = r.get_array<int32_t>("split dimensions", detail::array_entries(what, "split dimensions", {uc, depth}));
  model.thresholds_ = r.get_array<float>("thresholds", detail::array_entries(what, "thresholds", {uc, depth, leaves / 2}));
  model.prototypes_ = r.get_array<float>("prototypes", detail::array_entries(what, "prototypes", {uc, leaves, ud}));
  model.float_tables_ = r.get_array<float>("float tables", detail::array_entries(what, "float tables", {um, uc, leaves}));
  const std::vector<uint8_t> quantized =
      r.get_array<uint8_t>("quantized tables", detail::array_entries(what, "quantized tables", {um, table_bytes}));
  model.quantized_tables_.assign(quantized.begin(), quantized.end());
  if (version == 1) {
    // One scale for every output; an offset per codebook, summed in order as version 1 did.
    const float scale = r.get<float>("table scale");
    const std::vector<float> offsets = r.get_array<float>("table offsets", m > 0 ? uc : 0);
    check_all_finite(offsets, "table offsets");
    double sum = 0;
    for (float o : offsets) sum += o;
    model.table_scales_.assign(um, scale);
    model.table_offsets_.assign(um, sum);
  } else {
    model.table_scales_ = r.get_array<float>("table scales", um);
    model.table_offsets_ = r.get_array<double>("table offsets", um);
  }
  model.bias_ = r.get_array<float>("bias", um);
  LUTMUL_CHECK(r.done(), "model file is corrupt: unexpected bytes after the model");

  // Structural checks: the kernels index with these.
  LUTMUL_CHECK(model.subspace_begin_.front() == 0 && model.subspace_begin_.back() == d,
               "model file is corrupt: subspaces do not cover D");
  for (int64_t i = 0; i < c; ++i) {
    LUTMUL_CHECK(model.subspace_begin_[i] < model.subspace_begin_[i + 1], "model file is corrupt: empty subspace ", i);
    for (int t = 0; t < model.tree_depth(); ++t) {
      const int32_t dim = model.split_dims_[i * model.tree_depth() + t];
      LUTMUL_CHECK(dim >= model.subspace_begin_[i] && dim < model.subspace_begin_[i + 1],
                   "model file is corrupt: split dimension ", dim, " of codebook ", i, " is outside its subspace");
    }
  }
  for (float t : model.thresholds_) LUTMUL_CHECK(!std::isnan(t), "model file is corrupt: NaN threshold");
  check_all_finite(model.prototypes_, "prototypes");
  check_all_finite(model.float_tables_, "float tables");
  check_all_finite(model.table_offsets_, "table offsets");
  check_all_finite(model.bias_, "bias");
  for (float scale : model.table_scales_)
    LUTMUL_CHECK(std::isfinite(scale) && scale > 0, "model file is corrupt: table scale ", scale);
  if (m > 0) {
    model.build_output_offsets();
    model.build_wide_row_tables();
  }
  return model;
}

std::vector<uint8_t> Maddness::serialize() const {
  return detail::operator_file_bytes("maddness", payload(SavedAs::model));
}

bool Maddness::is_saved_model(const uint8_t* data, size_t size) {
  if (is_legacy_container(data, size)) return true;
  const detail::OperatorFileContents file = detail::read_operator_file(data, size);
  if (file.kind != "maddness" || is_legacy_container(file.payload.data(), file.payload.size())) return false;
  Reader r(file.payload.data(), file.payload.size(), "model file");
  r.get<uint32_t>("model format version");
  return r.get<uint8_t>("saved as") == static_cast<uint8_t>(SavedAs::model);
}

bool Maddness::is_saved_model(const std::string& path) {
  return detail::load_file(path, [](const uint8_t* data, size_t size) { return is_saved_model(data, size); });
}

Maddness Maddness::deserialize(const uint8_t* data, size_t size) {
  if (is_legacy_container(data, size)) return from_payload(data, size);
  const detail::OperatorFileContents file = detail::read_operator_file(data, size);
  LUTMUL_CHECK(file.kind == "maddness", "the file holds an operator of kind '", file.kind, "', not a MADDNESS model");
  return from_payload(file.payload.data(), file.payload.size());
}

void Maddness::save(const std::string& path) const {
  LUTMUL_CHECK(encoder_fitted(), "save: the model is not fitted");
  detail::write_file_atomically(path, serialize(), "save");
}

Maddness Maddness::load(const std::string& path) {
  return detail::load_file(path, &Maddness::deserialize);
}

}  // namespace lutmul
