# Runs a program and checks its exit status and output (CTest helper).
#   cmake -DPROGRAM=<exe> -DARGS="a|b|c" -DEXPECT_RC=<status> -DEXPECT_REGEX=<regex>
#         [-DWORKDIR=<dir>] -P expect_run.cmake
# ARGS is separated by '|' (a ';' would be split by add_test). EXPECT_REGEX must match stdout +
# stderr.
string(REPLACE "|" ";" _args "${ARGS}")
if(NOT WORKDIR)
    set(WORKDIR ".")
endif()
execute_process(COMMAND "${PROGRAM}" ${_args}
                WORKING_DIRECTORY "${WORKDIR}"
                RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
message("${_out}${_err}")
if(NOT "${_rc}" STREQUAL "${EXPECT_RC}")
    message(FATAL_ERROR "exit status ${_rc}, expected ${EXPECT_RC}")
endif()
if(NOT "${_out}${_err}" MATCHES "${EXPECT_REGEX}")
    message(FATAL_ERROR "the output does not match: ${EXPECT_REGEX}")
endif()
