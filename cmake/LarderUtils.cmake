include(GNUInstallDirs)

# Warnings (and sanitizers) for larder's own targets only, never for users' [spdlog cmake/utils.cmake].
function(larder_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  if(LARDER_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(LARDER_SANITIZE)
    string(REPLACE ";" "," _san "${LARDER_SANITIZE}")
    target_compile_options(${target} PRIVATE -fsanitize=${_san} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${_san})
  endif()
endfunction()
