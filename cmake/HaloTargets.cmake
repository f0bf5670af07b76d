# One helper per artifact kind, so every library and test is built the same way.

# GCC 12 reports false maybe-uninitialized positives inside std::variant moves.
set(HALO_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Werror=return-type
    -Wno-maybe-uninitialized)

# halo_add_library(NAME <layer> SOURCES ... DEPS ...): builds halo_<layer>, alias halo::<layer>.
function(halo_add_library)
  cmake_parse_arguments(A "" "NAME" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(halo_${A_NAME} STATIC ${A_SOURCES})
  add_library(halo::${A_NAME} ALIAS halo_${A_NAME})
  target_include_directories(halo_${A_NAME} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(halo_${A_NAME} PRIVATE ${HALO_WARNINGS})
  target_link_libraries(halo_${A_NAME} PUBLIC ${A_DEPS} PRIVATE ${A_PRIVATE_DEPS})
endfunction()

# halo_add_test(NAME <name> SOURCES ... DEPS ... [LABELS ...] [TIMEOUT s]): a GoogleTest binary in CTest.
function(halo_add_test)
  cmake_parse_arguments(A "" "NAME;TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${A_NAME} ${A_SOURCES})
  target_compile_options(${A_NAME} PRIVATE ${HALO_WARNINGS})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  target_compile_definitions(${A_NAME} PRIVATE
    HALO_SOURCE_DIR="${PROJECT_SOURCE_DIR}" HALO_BINARY_DIR="${PROJECT_BINARY_DIR}")
  if(NOT A_LABELS)
    set(A_LABELS unit)
  endif()
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 120)
  endif()
  add_test(NAME ${A_NAME} COMMAND ${A_NAME})
  set_tests_properties(${A_NAME} PROPERTIES LABELS "${A_LABELS}" TIMEOUT ${A_TIMEOUT})
endfunction()
