#include "lutmul/io/peft_adapter.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "lutmul/core/error.h"
#include "lutmul/io/safetensors.h"

namespace lutmul {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kSuffixA = "lora_A.weight";
constexpr const char* kSuffixB = "lora_B.weight";

json read_config(const fs::path& path) {
  std::error_code error;
  LUTMUL_CHECK(!fs::is_directory(path, error), path.string(), ": is a folder, not a file");
  std::ifstream in(path);
  LUTMUL_CHECK(in.good(), path.string(), ": cannot open (a PEFT adapter directory holds adapter_config.json)");
  try {
    json config = json::parse(in);
    LUTMUL_CHECK(config.is_object(), path.string(), ": must hold a JSON object");
    return config;
  } catch (const json::exception& e) {
    detail::throw_error(path.string(), ": not valid JSON (", e.what(), ")");
  }
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// `module` is the name, or ends with "." + name (PEFT's suffix rule for target names).
bool names(const std::string& module, const std::string& name) {
  return module == name || ends_with(module, "." + name);
}

// Limits on what goes through std::regex: libstdc++ compiles a pattern by recursive descent
// and, by default, matches by backtracking, one stack frame per character and exponential
// time for patterns like (a*)*b. Real PEFT module names and patterns are a few dozen
// characters.
constexpr size_t kMaxModuleName = 1024;
constexpr size_t kMaxPattern = 1024;
// libstdc++ reads the number of a back-reference or of a {n,m} repetition into a long with no
// overflow check (undefined behaviour at 20 digits; fuzz_peft_adapter found it) and compiles
// a repetition as that many copies of what it repeats. Patterns therefore get no
// back-references (the __polynomial matcher rejects them anyway) and repetition counts of
// at most kMaxRepeat, whose product over the pattern is at most kMaxCopies.
constexpr long kMaxRepeat = 64;
constexpr long kMaxCopies = 256;

void check_pattern_numbers(const std::string& pattern, const std::string& origin, const char* field) {
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  long copies = 1;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\') {
      LUTMUL_CHECK(i + 1 >= pattern.size() || !is_digit(pattern[i + 1]), origin, ": ", field, " \"", pattern,
                   "\" has a back-reference (\\", pattern[i + 1], "), which lutmul does not match");
      ++i;  // an escaped character, a brace included, is a literal
      continue;
    }
    if (pattern[i] != '{' || i + 1 >= pattern.size() || !is_digit(pattern[i + 1])) continue;
    long most = 0;
    for (size_t j = i + 1; j < pattern.size() && (is_digit(pattern[j]) || pattern[j] == ','); ++j) {
      if (pattern[j] == ',') continue;
      size_t end = j;
      long value = 0;
      while (end < pattern.size() && is_digit(pattern[end]) && value <= kMaxRepeat) value = 10 * value + (pattern[end++] - '0');
      LUTMUL_CHECK(value <= kMaxRepeat, origin, ": ", field, " \"", pattern, "\" repeats more than ", kMaxRepeat,
                   " times");
      most = value > most ? value : most;
      j = end - 1;
    }
    copies *= most > 0 ? most : 1;
    LUTMUL_CHECK(copies <= kMaxCopies, origin, ": ", field, " \"", pattern, "\" has repetitions whose counts multiply past ",
                 kMaxCopies);
  }
}

// `module` matches the regular expression `pattern` whole. libstdc++'s __polynomial flag
// matches by breadth-first search: time linear in the module's length, a stack that does not
// grow with it (patterns with back-references are then rejected as too complex).
bool regex_matches(const std::string& module, const std::string& pattern, const std::string& origin, const char* field) {
  LUTMUL_CHECK(pattern.size() <= kMaxPattern, origin, ": ", field, " is ", pattern.size(), " characters long, more than the ",
               kMaxPattern, " allowed");
  check_pattern_numbers(pattern, origin, field);
  try {
#ifdef __GLIBCXX__
    const auto flags = std::regex::ECMAScript | std::regex_constants::__polynomial;
#else
    const auto flags = std::regex::ECMAScript;
#endif
    return std::regex_match(module, std::regex(pattern, flags));
  } catch (const std::regex_error& e) {
    detail::throw_error(origin, ": ", field, " \"", pattern, "\" is not a valid regular expression (", e.what(), ")");
  }
}

// PEFT matches rank_pattern / alpha_pattern keys as regular expressions on the module's tail.
bool pattern_matches(const std::string& module, const std::string& key, const std::string& origin) {
  return regex_matches(module, "(.*\\.)?(" + key + ")", origin, "pattern");
}

// The module prefix of a lora_A key, or false if `key` is not one.
bool module_of(const std::string& key, std::string& module) {
  if (key == kSuffixA) {
    module.clear();
    return true;
  }
  if (!ends_with(key, std::string(".") + kSuffixA)) return false;
  module = key.substr(0, key.size() - std::char_traits<char>::length(kSuffixA) - 1);
  return true;
}

std::string key(const std::string& module, const char* suffix) { return module.empty() ? suffix : module + "." + suffix; }

std::vector<std::string> modules_in(const SafetensorsFile& file) {
  std::vector<std::string> modules;
  std::string module;
  for (const TensorInfo& t : file.tensors())
    if (module_of(t.name, module)) modules.push_back(module);
  return modules;
}

std::string joined(const std::vector<std::string>& items) {
  std::ostringstream out;
  for (size_t i = 0; i < items.size(); ++i) out << (i ? ", " : "") << '"' << items[i] << '"';
  return out.str();
}

}  // namespace

std::vector<std::string> peft_modules(const std::string& directory) {
  return modules_in(SafetensorsFile::read((fs::path(directory) / "adapter_model.safetensors").string()));
}

PeftAdapter read_peft_adapter(const std::string& directory, const std::string& module) {
  const fs::path dir(directory);
  LUTMUL_CHECK(fs::is_directory(dir), directory, ": not a directory (a PEFT adapter is a directory)");
  const fs::path config_path = dir / "adapter_config.json";
  const std::string origin = config_path.string();
  const json config = read_config(config_path);

  auto field = [&](const char* name) -> const json* {
    const auto it = config.find(name);
    return it == config.end() || it->is_null() ? nullptr : &*it;
  };
  if (const json* type = field("peft_type"))
    LUTMUL_CHECK(type->is_string() && type->get<std::string>() == "LORA", origin, ": peft_type is ", type->dump(),
                 ", not \"LORA\"");
  if (const json* dora = field("use_dora"))
    LUTMUL_CHECK(!(dora->is_boolean() && dora->get<bool>()), origin, ": DoRA adapters (use_dora) are not supported");
  const json* r_field = field("r");
  LUTMUL_CHECK(r_field != nullptr && r_field->is_number_integer() && r_field->get<int64_t>() >= 1, origin,
               ": r must be a positive integer, got ", r_field != nullptr ? r_field->dump() : "nothing");
  const json* alpha_field = field("lora_alpha");
  LUTMUL_CHECK(alpha_field != nullptr && alpha_field->is_number() && std::isfinite(alpha_field->get<double>()), origin,
               ": lora_alpha must be a number, got ", alpha_field != nullptr ? alpha_field->dump() : "nothing");
  bool rslora = false;
  if (const json* v = field("use_rslora")) {
    LUTMUL_CHECK(v->is_boolean(), origin, ": use_rslora must be true or false, got ", v->dump());
    rslora = v->get<bool>();
  }

  const SafetensorsFile file = SafetensorsFile::read((dir / "adapter_model.safetensors").string());
  const std::vector<std::string> modules = modules_in(file);
  LUTMUL_CHECK(!modules.empty(), file.origin(), ": holds no \"", kSuffixA, "\" tensor (not a LoRA adapter file?)");
  std::vector<std::string> chosen;
  for (const std::string& m : modules)
    if (module.empty() || names(m, module)) chosen.push_back(m);
  LUTMUL_CHECK(chosen.size() == 1, file.origin(),
               module.empty() ? ": holds several adapted modules; name one of " : ": no single module matches \"",
               module.empty() ? "" : module + "\"; the file holds ", joined(modules));

  PeftAdapter out;
  out.module = chosen.front();
  LUTMUL_CHECK(out.module.size() <= kMaxModuleName, file.origin(), ": module name of ", out.module.size(),
               " characters is longer than the ", kMaxModuleName, " allowed");
  if (const json* targets = field("target_modules"); targets != nullptr && !out.module.empty()) {
    bool targeted = false;
    if (targets->is_string()) {
      targeted = regex_matches(out.module, targets->get<std::string>(), origin, "target_modules");
    } else {
      LUTMUL_CHECK(targets->is_array(), origin, ": target_modules must be a list or a string, got ", targets->dump());
      for (const json& t : *targets) {
        LUTMUL_CHECK(t.is_string(), origin, ": target_modules must hold strings, got ", t.dump());
        targeted = targeted || names(out.module, t.get<std::string>());
      }
    }
    LUTMUL_CHECK(targeted, origin, ": module \"", out.module, "\" is not among target_modules ", targets->dump());
  }

  int64_t rank = r_field->get<int64_t>();
  double alpha = alpha_field->get<double>();
  if (const json* patterns = field("rank_pattern"); patterns != nullptr && patterns->is_object())
    for (const auto& [pattern, value] : patterns->items())
      if (pattern_matches(out.module, pattern, origin)) {
        LUTMUL_CHECK(value.is_number_integer() && value.get<int64_t>() >= 1, origin, ": rank_pattern[\"", pattern,
                     "\"] must be a positive integer");
        rank = value.get<int64_t>();
        break;
      }
  if (const json* patterns = field("alpha_pattern"); patterns != nullptr && patterns->is_object())
    for (const auto& [pattern, value] : patterns->items())
      if (pattern_matches(out.module, pattern, origin)) {
        LUTMUL_CHECK(value.is_number(), origin, ": alpha_pattern[\"", pattern, "\"] must be a number");
        alpha = value.get<double>();
        break;
      }

  const std::string key_a = key(out.module, kSuffixA), key_b = key(out.module, kSuffixB);
  LUTMUL_CHECK(file.find(key_b) != nullptr, file.origin(), ": has \"", key_a, "\" but no \"", key_b, "\"");
  LUTMUL_CHECK(file.find(key(out.module, "lora_B.bias")) == nullptr, file.origin(), ": \"",
               key(out.module, "lora_B.bias"), "\" (an adapter bias, lora_bias) is not supported");
  const TensorInfo& a = file.tensor(key_a);
  const TensorInfo& b = file.tensor(key_b);
  LUTMUL_CHECK(a.shape.size() == 2 && b.shape.size() == 2 && a.shape[0] == b.shape[1] && a.shape[0] >= 1 &&
                   a.shape[1] >= 1 && b.shape[0] >= 1,
               file.origin(), ": \"", key_a, "\" must be r x K and \"", key_b, "\" M x r with r, K, M >= 1; got ",
               a.shape.size() == 2 ? std::to_string(a.shape[0]) + " x " + std::to_string(a.shape[1]) : "another rank",
               " and ",
               b.shape.size() == 2 ? std::to_string(b.shape[0]) + " x " + std::to_string(b.shape[1]) : "another rank");
  out.rank = a.shape[0];
  out.k = a.shape[1];
  out.m = b.shape[0];
  LUTMUL_CHECK(out.rank == rank, file.origin(), ": module \"", out.module, "\" has rank ", out.rank, " but ", origin,
               " says r = ", rank);
  out.alpha = static_cast<float>(rslora ? alpha * std::sqrt(static_cast<double>(rank)) : alpha);
  LUTMUL_CHECK(std::isfinite(out.alpha), origin, ": lora_alpha ", alpha, " is out of float range");

  const std::vector<float> a_rows = file.to_float(key_a), b_rows = file.to_float(key_b);  // r × K, M × r
  out.a.resize(a_rows.size());
  for (int64_t s = 0; s < out.rank; ++s)
    for (int64_t k = 0; k < out.k; ++k) out.a[k * out.rank + s] = a_rows[s * out.k + k];
  out.b.resize(b_rows.size());
  for (int64_t j = 0; j < out.m; ++j)
    for (int64_t s = 0; s < out.rank; ++s) out.b[s * out.m + j] = b_rows[j * out.rank + s];
  return out;
}

}  // namespace lutmul
