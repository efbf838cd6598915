#pragma once
/// \file baselines.hpp
/// The baseline algorithms to compare Swarm SGD against (docs/baselines.md), over the same
/// model, communicator and quantizer concepts: allreduce SGD (synchronous data-parallel SGD),
/// local SGD (periodic model averaging), D-PSGD (synchronous decentralized SGD) and AD-PSGD (a
/// named configuration of swarm_node), plus the ring allreduce engine they share. Every node
/// class satisfies stepping_node. The native MPI allreduce is in communicators/mpi.hpp
/// (optional component); nothing here needs MPI.

#include "baselines/ad_psgd.hpp"
#include "baselines/allreduce_sgd.hpp"
#include "baselines/dpsgd.hpp"
#include "baselines/local_sgd.hpp"
#include "baselines/native_allreduce.hpp"
#include "baselines/ring_allreduce.hpp"
