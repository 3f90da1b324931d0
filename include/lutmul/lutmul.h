// The whole public API of lutmul.
#pragma once

#include "lutmul/channel_pruned_linear.h"
#include "lutmul/dense_linear.h"
#include "lutmul/error.h"
#include "lutmul/int8_linear.h"
#include "lutmul/linear_operator.h"
#include "lutmul/lora_linear.h"
#include "lutmul/lowrank_linear.h"
#include "lutmul/isa.h"
#include "lutmul/maddness.h"
#include "lutmul/matrix.h"
#include "lutmul/peft_adapter.h"
#include "lutmul/safetensors.h"
#include "lutmul/sparse_linear.h"
#include "lutmul/threading.h"
#include "lutmul/version.h"
