// The inference runtime (separate from lutmul.h): a sentence encoder whose linear layers are
// lutmul operators.
#pragma once

#include "lutmul/lutmul.h"
#include "lutmul/runtime/encoder.h"
