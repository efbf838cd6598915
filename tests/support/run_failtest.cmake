# Runs one failtest: builds the EXCLUDE_FROM_ALL object target TARGET in BUILD_DIR (config CONFIG)
# and passes only if the build FAILS and its output matches the regex on the first line of
# SOURCE (`// expect: <regex>`).
#
#   cmake -DBUILD_DIR=... -DTARGET=... -DCONFIG=... -DSOURCE=... -P run_failtest.cmake
foreach(var BUILD_DIR TARGET SOURCE)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "run_failtest.cmake: ${var} not set")
    endif()
endforeach()

file(STRINGS "${SOURCE}" first_line LIMIT_COUNT 1)
if(NOT first_line MATCHES "^//[ \t]*expect:[ \t]*(.+)$")
    message(FATAL_ERROR "${SOURCE}: the first line must be `// expect: <regex>`")
endif()
string(STRIP "${CMAKE_MATCH_1}" expected)

set(config_args)
if(CONFIG)
    set(config_args --config "${CONFIG}")
endif()
execute_process(
    COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target "${TARGET}" ${config_args}
    RESULT_VARIABLE rc
    OUTPUT_VARIABLE out
    ERROR_VARIABLE out)

if(rc EQUAL 0)
    message(FATAL_ERROR "FAILTEST ${TARGET}: ${SOURCE} compiled, but it must not.\n${out}")
endif()
if(NOT out MATCHES "${expected}")
    message(FATAL_ERROR "FAILTEST ${TARGET}: compilation failed, but the output does not match "
                        "the expected regex `${expected}`:\n${out}")
endif()
message(STATUS "FAILTEST ${TARGET}: compilation failed as expected (matched `${expected}`)")
string(REGEX MATCH "[^\n]*(${expected})[^\n]*" matched_line "${out}")
message(STATUS "  ${matched_line}")
