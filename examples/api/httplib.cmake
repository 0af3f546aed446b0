# Finds cpp-httplib and defines larder_httplib (an INTERFACE target) when found. Included by
# examples/api/CMakeLists.txt and tests/json.cmake (which is read first). Debian ships a header, a
# compiled library and a pkg-config file (no CMake config); upstream installs httplibConfig.cmake
# with httplib::httplib. Either is accepted.
if(NOT TARGET larder_httplib)
  find_package(httplib CONFIG QUIET)
  if(TARGET httplib::httplib)
    add_library(larder_httplib INTERFACE)
    target_link_libraries(larder_httplib INTERFACE httplib::httplib)
  else()
    find_package(PkgConfig QUIET)
    if(PkgConfig_FOUND)
      pkg_check_modules(LARDER_HTTPLIB QUIET IMPORTED_TARGET GLOBAL cpp-httplib)
    endif()
    if(TARGET PkgConfig::LARDER_HTTPLIB)
      add_library(larder_httplib INTERFACE)
      target_link_libraries(larder_httplib INTERFACE PkgConfig::LARDER_HTTPLIB)
    endif()
  endif()
endif()
