#pragma once
// LibTorch and doctest in one test: LibTorch's headers include glog, whose CHECK, CHECK_EQ, ...
// macros would silently replace doctest's (system headers do not warn on redefinition), and a
// failed check would then abort the process instead of failing the test. Include this header
// instead of both: LibTorch first, glog's macros dropped, then doctest's defined.

#include <swarmsgd/torch.hpp>

#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LE
#undef CHECK_LT
#undef CHECK_GE
#undef CHECK_GT
#undef CHECK_FALSE
#undef CHECK_THROWS
#undef CHECK_NOTHROW

#include <doctest/doctest.h>
