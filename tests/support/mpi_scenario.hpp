#pragma once
// What the MPI test programs share (tests/mpi/test_mpi_*.cpp): the rank and size of
// MPI_COMM_WORLD, an EXPECT that records a failed check in a local `bool ok`, and the main()
// that runs one named scenario on every rank and agrees on the verdict.

#include <swarmsgd/communicators/mpi.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

namespace test_support {

inline int rank_of() {
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

inline int size_of() {
    int s = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &s);
    return s;
}

/// Runs scenario `argv[1]` (or `default_name`) with `scenario(name)` on every rank. Every rank
/// checks its part; the ranks agree on the verdict with one allreduce, and rank 0 prints "mpi
/// <scenario> ranks=<n>: PASSED" (exit 0) or FAILED (exit 1). For a scenario where
/// `expects_failure(name)` is true, an exception is the expected report: it is printed and
/// written to $SWARMSGD_MPI_REPORT_DIR/rank<r> (MPI_Abort may tear the job down before the
/// launcher forwards stdout; tests/mpi/expect_report.cmake checks the files), then the job is
/// aborted, since a rank that detected a dead peer cannot run collectives with it.
template <class Scenario, class ExpectsFailure>
int run_scenario_main(int argc, char** argv, const char* default_name, Scenario scenario,
                      ExpectsFailure expects_failure) {
    swarmsgd::mpi_environment env(argc, argv);
    const std::string name = argc > 1 ? argv[1] : default_name;
    const bool failure_expected = expects_failure(name);
    int ok = 0;
    try {
        ok = scenario(name) ? 1 : 0;
    } catch (const std::exception& e) {
        std::printf("rank %d: %s: %s\n", rank_of(), failure_expected ? "reported" : "error",
                    e.what());
        std::fflush(stdout);
        if (failure_expected) {
            if (const char* dir = std::getenv("SWARMSGD_MPI_REPORT_DIR")) {
                const std::string path = std::string(dir) + "/rank" + std::to_string(rank_of());
                if (std::FILE* f = std::fopen(path.c_str(), "w")) {
                    std::fprintf(f, "reported: %s\n", e.what());
                    std::fclose(f);
                }
            }
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
        ok = 0;
    }
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (rank_of() == 0)
        std::printf("mpi %s ranks=%d: %s\n", name.c_str(), size_of(), all ? "PASSED" : "FAILED");
    return all ? 0 : 1;
}

}  // namespace test_support

/// Records a failed check in the enclosing `bool ok` and names the rank and line on stderr.
#define EXPECT(cond)                                                                             \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            std::fprintf(stderr, "rank %d: %s:%d: EXPECT(%s) failed\n", test_support::rank_of(), \
                         __FILE__, __LINE__, #cond);                                             \
            ok = false;                                                                          \
        }                                                                                        \
    } while (0)
