#pragma once
/// \file mpi_program.hpp
/// The main() of the MPI ResNet programs (resnet_swarm_mpi on the Eigen network,
/// resnet_torch_swarm_mpi on LibTorch): MPI up, the command line parsed, the program's body
/// run, and the errors reported the same way by both.

#include <swarmsgd/communicators/mpi.hpp>

#include <cstdio>
#include <exception>
#include <string>

#include "options.hpp"

namespace swarmsgd::examples::resnet {

/// Initializes MPI, parses argv over `defaults` (no --nodes: one node per rank) and returns
/// `body(options)`. A usage error is printed once, by rank 0, with the usage (exit status 2;
/// --help prints the usage, status 0); any other error is printed by the rank that had it,
/// naming it, and aborts the job (the other ranks may be waiting for this one).
template <class Body>
int mpi_main(int argc, char** argv, const std::string& name, const run_options& defaults,
             Body body) {
    mpi_environment env(argc, argv);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    try {
        return body(parse_run_options(argc, argv, true, defaults));
    } catch (const usage_error& e) {
        const bool help = std::string(e.what()) == "help";
        if (rank == 0) {
            if (help)
                std::printf("%s", usage_text(name, true).c_str());
            else
                std::fprintf(stderr, "%s: %s\n%s", name.c_str(), e.what(),
                             usage_text(name, true).c_str());
        }
        return help ? 0 : 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s (rank %d): %s\n", name.c_str(), rank, e.what());
        MPI_Abort(MPI_COMM_WORLD, 1);
        return 1;
    }
}

}  // namespace swarmsgd::examples::resnet
