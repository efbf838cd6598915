# Runs one libFuzzer target for a bounded number of inputs (the fuzz_* CTest tests).
#   cmake -DFUZZER=<binary> -DCORPUS=<dir> -DARTIFACTS=<dir> -DRUNS=<n> -DMAX_LEN=<bytes>
#         -P run_fuzzer.cmake
# The corpus directory is emptied first and refilled with the target's generated seeds
# (SWARMSGD_FUZZ_SEED_DIR), so every run starts from the same corpus with the same -seed: a
# failure reproduces. A crash input lands in ARTIFACTS as crash-<sha1> (run the fuzzer with
# that file as its only argument to reproduce it).
foreach(var FUZZER CORPUS ARTIFACTS RUNS MAX_LEN)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "run_fuzzer.cmake: -D${var}=... is required")
    endif()
endforeach()
get_filename_component(name "${FUZZER}" NAME)
file(REMOVE_RECURSE "${CORPUS}")
file(MAKE_DIRECTORY "${CORPUS}" "${ARTIFACTS}")
set(ENV{SWARMSGD_FUZZ_SEED_DIR} "${CORPUS}")
execute_process(
    COMMAND "${FUZZER}" -runs=${RUNS} -max_len=${MAX_LEN} -seed=1 -timeout=30
            -artifact_prefix=${ARTIFACTS}/${name}- -print_final_stats=1 "${CORPUS}"
    RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name} failed (exit ${rc}); the input is in ${ARTIFACTS}/${name}-*")
endif()
