include(CMakePackageConfigHelpers)

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/larder" DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(_larder_targets larder)
if(TARGET larder_redis)
  list(APPEND _larder_targets larder_redis)
endif()
install(TARGETS ${_larder_targets} EXPORT larderTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT larderTargets NAMESPACE larder:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/larder)

set(LARDER_WITH_REDIS OFF)
if(TARGET larder_redis)
  set(LARDER_WITH_REDIS ON)
endif()
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/larderConfig.cmake.in"
                              "${PROJECT_BINARY_DIR}/larderConfig.cmake"
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/larder)
write_basic_package_version_file("${PROJECT_BINARY_DIR}/larderConfigVersion.cmake"
                                 COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/larderConfig.cmake" "${PROJECT_BINARY_DIR}/larderConfigVersion.cmake"
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/larder)

# Relocatable: the prefix is found from the .pc file's own place, so `cmake --install --prefix X`
# and a moved install tree both work.
file(RELATIVE_PATH LARDER_PC_TO_PREFIX "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
configure_file("${PROJECT_SOURCE_DIR}/cmake/larder.pc.in" "${PROJECT_BINARY_DIR}/larder.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/larder.pc" DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
# The Redis store for pkg-config users: `pkg-config --cflags --libs larder-redis`. A static
# larder_redis needs hiredis on the link line itself; a shared one links it already.
if(TARGET larder_redis)
  get_target_property(_larder_redis_type larder_redis TYPE)
  if(_larder_redis_type STREQUAL "STATIC_LIBRARY")
    set(LARDER_PC_REDIS_REQUIRES "larder hiredis")
    set(LARDER_PC_REDIS_REQUIRES_PRIVATE "")
  else()
    set(LARDER_PC_REDIS_REQUIRES "larder")
    set(LARDER_PC_REDIS_REQUIRES_PRIVATE "hiredis")
  endif()
  configure_file("${PROJECT_SOURCE_DIR}/cmake/larder-redis.pc.in"
                 "${PROJECT_BINARY_DIR}/larder-redis.pc" @ONLY)
  install(FILES "${PROJECT_BINARY_DIR}/larder-redis.pc"
          DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endif()
