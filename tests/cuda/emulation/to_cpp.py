#!/usr/bin/env python3
"""Rewrites a lutmul .cu file into C++ for the CPU emulator (tests only): kernel launches
`k<<<grid, block, shared, stream>>>(args)` become `::emu::launch(k, grid, block, shared,
stream)(args)`, and `extern __shared__ T name[];` a pointer to the block's dynamic shared memory.

    to_cpp.py input.cu output.cpp
"""
import re
import sys

source = open(sys.argv[1]).read()
rewritten = re.sub(r"([A-Za-z_][A-Za-z_0-9:<>, ]*?)<<<(.+?)>>>\(", r"::emu::launch(\1, \2)(", source, flags=re.S)
rewritten = re.sub(r"extern __shared__ (\w+) (\w+)\[\];",
                   r"\1* \2 = reinterpret_cast<\1*>(::emu::dynamic_shared());", rewritten)
if "<<<" in rewritten or "extern __shared__" in rewritten:
    sys.exit(f"{sys.argv[1]}: a launch or shared declaration was not rewritten")
with open(sys.argv[2], "w") as out:
    out.write(f'#line 1 "{sys.argv[1]}"\n' + rewritten)
