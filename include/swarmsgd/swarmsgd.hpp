#pragma once
/// \file swarmsgd.hpp
/// Umbrella header: the core of swarmsgd (concepts, algorithm, in-process and simulated
/// communicators, identity quantizer, topologies). It pulls in nothing optional: include
/// <swarmsgd/eigen.hpp> (Eigen adapter) yourself where you need it.

#include "block_communicator.hpp"
#include "communicator.hpp"
#include "communicators/in_process.hpp"
#include "communicators/simulated.hpp"
#include "consensus.hpp"
#include "errors.hpp"
#include "in_process_swarm.hpp"
#include "local_steps.hpp"
#include "message.hpp"
#include "message_block_pool.hpp"
#include "model.hpp"
#include "node_stats.hpp"
#include "problem.hpp"
#include "quantizer.hpp"
#include "quantizers/identity.hpp"
#include "random.hpp"
#include "sgd.hpp"
#include "simulator.hpp"
#include "stepping_node.hpp"
#include "swarm_node.hpp"
#include "swarm_options.hpp"
#include "tensor_traits.hpp"
#include "thread_world.hpp"
#include "topology.hpp"
#include "version.hpp"
