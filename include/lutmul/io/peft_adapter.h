// Reading one LoRA adapter saved by Hugging Face PEFT: a directory with adapter_config.json
// (r, lora_alpha, target_modules, ...) and adapter_model.safetensors holding, per adapted
// layer, "<module>.lora_A.weight" (r × K) and "<module>.lora_B.weight" (M × r), in F32, F16
// or BF16. Checked: the shapes agree with each other and with r (or its rank_pattern entry),
// the module is one that target_modules names. Unsupported variants are errors: DoRA
// (use_dora), adapter biases (lora_B.bias), peft_type other than LORA.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lutmul {

struct PeftAdapter {
  std::string module;  // the layer's key prefix in the file ("" when the keys have none)
  int64_t rank = 0, k = 0, m = 0;
  // Effective alpha for Y += (alpha/r)·(X·A)·B: lora_alpha (or its alpha_pattern entry), times
  // √r under use_rslora, whose scale is lora_alpha/√r.
  float alpha = 0.f;
  std::vector<float> a;  // K × r, row-major (lora_A transposed)
  std::vector<float> b;  // r × M, row-major (lora_B transposed)
};

// The modules with a lora_A/lora_B pair in `directory`'s adapter file.
std::vector<std::string> peft_modules(const std::string& directory);
// Reads the adapter of `module`: the one whose key prefix equals it or ends with "." + module.
// An empty `module` needs the file to hold exactly one.
PeftAdapter read_peft_adapter(const std::string& directory, const std::string& module = "");

}  // namespace lutmul
