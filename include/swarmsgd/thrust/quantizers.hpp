#pragma once
/// \file thrust/quantizers.hpp
/// The system codecs of every quantizer the library ships (thrust/codec.hpp): identity, fp16,
/// bf16, min-max, QSGD, lattice and the error-feedback wrapper of any of them.

#include "codec.hpp"
#include "quantizers/cast16.hpp"
#include "quantizers/error_feedback.hpp"
#include "quantizers/identity.hpp"
#include "quantizers/lattice.hpp"
#include "quantizers/min_max.hpp"
#include "quantizers/qsgd.hpp"
