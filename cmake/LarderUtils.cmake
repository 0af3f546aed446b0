include(GNUInstallDirs)

# Warnings (and sanitizers) for larder's own targets only, never for users' [spdlog cmake/utils.cmake].
function(larder_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  if(LARDER_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  # GCC 12 at -O3 warns -Wrestrict inside libstdc++'s std::string operator+ (a false positive:
  # https://gcc.gnu.org/bugzilla/show_bug.cgi?id=105651); keep it a warning, never an error.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12
     AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-error=restrict)
  endif()
  if(LARDER_SANITIZE)
    string(REPLACE ";" "," _san "${LARDER_SANITIZE}")
    target_compile_options(${target} PRIVATE -fsanitize=${_san} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${_san})
  endif()
endfunction()
