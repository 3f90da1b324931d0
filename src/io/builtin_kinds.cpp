// The built-in operator kinds: how each is read from its payload and built from dense
// weights with named parameters. One entry per kind; a new kind adds its entry here.
#include <cerrno>
#include <cstdlib>

#include "lutmul/core/error.h"
#include "lutmul/operators/bf16_linear.h"
#include "lutmul/operators/channel_pruned_linear.h"
#include "lutmul/operators/dense_linear.h"
#include "lutmul/operators/factory.h"
#include "lutmul/operators/int8_linear.h"
#include "lutmul/operators/lora_linear.h"
#include "lutmul/operators/lowrank_linear.h"
#include "lutmul/operators/maddness_linear.h"
#include "lutmul/operators/sparse24_linear.h"
#include "lutmul/operators/sparse_linear.h"

namespace lutmul {

namespace {

const std::string* find(const std::map<std::string, std::string>& values, const std::string& name) {
  const auto it = values.find(name);
  return it == values.end() ? nullptr : &it->second;
}

// One of `choices` by name: the enum value at the same position.
template <class Enum>
Enum choice(const BuildParams& params, const std::string& name, Enum fallback,
            std::initializer_list<std::pair<const char*, Enum>> choices) {
  if (!params.has(name)) return fallback;
  const std::string value = params.text(name, "");
  std::string names;
  for (const auto& [spelling, e] : choices) {
    if (value == spelling) return e;
    names += (names.empty() ? "" : ", ") + std::string(spelling);
  }
  detail::throw_error("parameter ", name, "='", value, "' is not one of ", names);
}

// Pruning scores: by magnitude, or by Wanda's |W|·‖X[:, k]‖ on the calibration rows.
const MatrixView* scoring_rows(const BuildParams& params, const MatrixView* calibration, const char* kind) {
  const std::string score = params.text("score", "magnitude");
  LUTMUL_CHECK(score == "magnitude" || score == "wanda", kind, ": parameter score='", score,
               "' is not one of magnitude, wanda");
  LUTMUL_CHECK(score == "magnitude" || calibration != nullptr, kind, ": score=wanda needs calibration rows");
  return score == "wanda" ? calibration : nullptr;
}

}  // namespace

double BuildParams::number(const std::string& name, double fallback) const {
  const std::string* value = find(values_, name);
  if (value == nullptr) return fallback;
  read_.insert(name);
  errno = 0;
  char* end = nullptr;
  const double parsed = std::strtod(value->c_str(), &end);
  LUTMUL_CHECK(!value->empty() && *end == '\0' && errno == 0, "parameter ", name, "='", *value, "' is not a number");
  return parsed;
}

int64_t BuildParams::integer(const std::string& name, int64_t fallback) const {
  const std::string* value = find(values_, name);
  if (value == nullptr) return fallback;
  read_.insert(name);
  errno = 0;
  char* end = nullptr;
  const long long parsed = std::strtoll(value->c_str(), &end, 10);
  LUTMUL_CHECK(!value->empty() && *end == '\0' && errno == 0, "parameter ", name, "='", *value, "' is not an integer");
  return parsed;
}

bool BuildParams::flag(const std::string& name, bool fallback) const {
  const std::string* value = find(values_, name);
  if (value == nullptr) return fallback;
  read_.insert(name);
  if (*value == "true" || *value == "1") return true;
  if (*value == "false" || *value == "0") return false;
  detail::throw_error("parameter ", name, "='", *value, "' is not true or false");
}

std::string BuildParams::text(const std::string& name, const std::string& fallback) const {
  const std::string* value = find(values_, name);
  if (value == nullptr) return fallback;
  read_.insert(name);
  return *value;
}

void BuildParams::check_all_read(const std::string& kind) const {
  for (const auto& entry : values_)
    LUTMUL_CHECK(read_.count(entry.first) != 0, "kind '", kind, "' takes no parameter '", entry.first, "' (it takes: ",
                 operator_kind(kind).parameters, ")");
}

namespace detail {

void register_builtin_kinds() {
  register_operator_kind({"dense", [](const uint8_t* d, size_t n) { return DenseLinear::from_payload(d, n); },
                          [](const MatrixView& W, const float* b, const MatrixView*, const BuildParams&) {
                            return std::make_unique<DenseLinear>(W, b);
                          },
                          "(none)"});
  register_operator_kind({"bf16", [](const uint8_t* d, size_t n) { return Bf16Linear::from_payload(d, n); },
                          [](const MatrixView& W, const float* b, const MatrixView*, const BuildParams&) {
                            return std::make_unique<Bf16Linear>(W, b);
                          },
                          "(none)"});
  register_operator_kind(
      {"int8", [](const uint8_t* d, size_t n) { return Int8Linear::from_payload(d, n); },
       [](const MatrixView& W, const float* b, const MatrixView* calibration, const BuildParams& p) {
         Int8Config config;
         config.activations = choice(p, "activations", config.activations,
                                     {{"dynamic", ActivationScaling::dynamic_per_row},
                                      {"static", ActivationScaling::static_per_tensor}});
         config.calibration_percentile = p.number("calibration_percentile", config.calibration_percentile);
         config.smoothing = p.number("smoothing", config.smoothing);
         return std::make_unique<Int8Linear>(W, b, config, calibration);
       },
       "activations=dynamic|static calibration_percentile=100 smoothing=0"});
  register_operator_kind({"sparse", [](const uint8_t* d, size_t n) { return SparseLinear::from_payload(d, n); },
                          [](const MatrixView& W, const float* b, const MatrixView* calibration, const BuildParams& p) {
                            SparseConfig config;
                            config.sparsity = p.number("sparsity", config.sparsity);
                            return std::make_unique<SparseLinear>(W, b, config, scoring_rows(p, calibration, "sparse"));
                          },
                          "sparsity=0.9 score=magnitude|wanda"});
  register_operator_kind({"sparse24", [](const uint8_t* d, size_t n) { return Sparse24Linear::from_payload(d, n); },
                          [](const MatrixView& W, const float* b, const MatrixView* calibration, const BuildParams& p) {
                            return std::make_unique<Sparse24Linear>(W, b, scoring_rows(p, calibration, "sparse24"));
                          },
                          "score=magnitude|wanda"});
  register_operator_kind(
      {"channel_pruned", [](const uint8_t* d, size_t n) { return ChannelPrunedLinear::from_payload(d, n); },
       [](const MatrixView& W, const float* b, const MatrixView*, const BuildParams& p) {
         ChannelPruningConfig config;
         config.fraction = p.number("fraction", config.fraction);
         config.channels = choice(p, "channels", config.channels,
                                  {{"outputs", PrunedChannels::outputs}, {"inputs", PrunedChannels::inputs}});
         return std::make_unique<ChannelPrunedLinear>(W, b, config);
       },
       "fraction=0.5 channels=outputs|inputs"});
  register_operator_kind(
      {"maddness", [](const uint8_t* d, size_t n) { return MaddnessLinear::from_payload(d, n); },
       [](const MatrixView& W, const float* b, const MatrixView* calibration, const BuildParams& p) {
         LUTMUL_CHECK(calibration != nullptr, "maddness: the encoder is learned from calibration rows; none were given");
         MaddnessConfig config;
         config.ncodebooks = static_cast<int>(p.integer("ncodebooks", config.ncodebooks));
         config.leaves = static_cast<int>(p.integer("leaves", config.leaves));
         config.split_candidates = static_cast<int>(p.integer("split_candidates", config.split_candidates));
         config.prototypes = choice(p, "prototypes", config.prototypes,
                                    {{"ridge", PrototypeMethod::ridge}, {"bucket_means", PrototypeMethod::bucket_means}});
         config.heldout_fraction = p.number("heldout_fraction", config.heldout_fraction);
         config.seed = static_cast<uint64_t>(p.integer("seed", 0));
         config.accumulation = choice(p, "accumulation", config.accumulation,
                                      {{"exact", Accumulation::exact}, {"averaged", Accumulation::averaged}});
         config.tables = choice(p, "tables", config.tables, {{"uint8", TableMode::uint8}, {"float32", TableMode::float32}});
         return std::make_unique<MaddnessLinear>(W, b, *calibration, config);
       },
       "ncodebooks=16 leaves=16|64 split_candidates=4 prototypes=ridge|bucket_means heldout_fraction=0.2 seed=0 "
       "accumulation=exact|averaged tables=uint8|float32"});
  register_operator_kind(
      {"low_rank", [](const uint8_t* d, size_t n) { return LowRankLinear::from_payload(d, n); },
       [](const MatrixView& W, const float* b, const MatrixView* calibration, const BuildParams& p) {
         LowRankConfig config;
         config.rule = choice(p, "rule", p.has("energy")      ? RankRule::energy
                                         : p.has("max_error") ? RankRule::max_error
                                                              : config.rule,
                              {{"fixed", RankRule::fixed}, {"energy", RankRule::energy}, {"max_error", RankRule::max_error}});
         config.rank = p.integer("rank", config.rank);
         config.energy = p.number("energy", config.energy);
         config.max_error = p.number("max_error", config.max_error);
         config.data_aware = p.flag("data_aware", config.data_aware);
         config.damping = p.number("damping", config.damping);
         return std::make_unique<LowRankLinear>(W, b, config, calibration);
       },
       "rank=1 | energy=0.9 | max_error=0.05, rule=fixed|energy|max_error data_aware=false damping=0.001"});
  register_operator_kind({"lora", [](const uint8_t* d, size_t n) { return LoraLinear::from_payload(d, n); },
                          [](const MatrixView& W, const float* b, const MatrixView* calibration, const BuildParams& p) {
                            // Adapters are added afterwards (add_adapter, load_peft).
                            const std::string base = p.text("base", "dense");
                            LUTMUL_CHECK(base != "lora", "lora: the base cannot itself be lora");
                            return std::make_unique<LoraLinear>(
                                std::shared_ptr<const LinearOperator>(build(base, W, b, calibration)));
                          },
                          "base=dense (any other kind, built with its defaults)"});
}

}  // namespace detail
}  // namespace lutmul
