# Install rules and the CMake package: `cmake --install` then `find_package(apollo_oauth)` gives
# apollo_oauth::apollo_oauth, apollo_oauth::sansio and apollo_oauth::emulator, and
# apollo_oauth::redis when the build had hiredis (the Redis token store's own library).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(APOLLO_OAUTH_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/apollo_oauth
    CACHE STRING "Where the CMake package files are installed, relative to the prefix")

# Exported names match the in-tree aliases, so a consumer's CMakeLists reads the same whether it
# uses add_subdirectory or find_package.
set_target_properties(apollo_oauth_sansio PROPERTIES EXPORT_NAME sansio)
set_target_properties(apollo_oauth_emulator PROPERTIES EXPORT_NAME emulator)
set(apollo_oauth_installed apollo_oauth apollo_oauth_sansio apollo_oauth_emulator)
if(TARGET apollo_oauth_redis)
    set_target_properties(apollo_oauth_redis PROPERTIES EXPORT_NAME redis)
    list(APPEND apollo_oauth_installed apollo_oauth_redis)
    set(APOLLO_OAUTH_HAS_REDIS ON)
else()
    set(APOLLO_OAUTH_HAS_REDIS OFF)
endif()
# A static Redis store needs hiredis at the consumer's link step (the package config finds it).
if(APOLLO_OAUTH_HAS_REDIS AND NOT BUILD_SHARED_LIBS)
    set(APOLLO_OAUTH_REDIS_NEEDS_HIREDIS ON)
else()
    set(APOLLO_OAUTH_REDIS_NEEDS_HIREDIS OFF)
endif()
if(BUILD_SHARED_LIBS)
    # The libraries find each other (libapollo_oauth.so needs libapollo_oauth_sansio.so) wherever
    # the prefix is moved. The soname carries what the version file promises: before 1.0 a minor
    # release breaks the ABI, so libapollo_oauth.so.0.2 (0.x: major.minor).
    if(PROJECT_VERSION_MAJOR EQUAL 0)
        set(apollo_oauth_soversion ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
    else()
        set(apollo_oauth_soversion ${PROJECT_VERSION_MAJOR})
    endif()
    set_target_properties(${apollo_oauth_installed} PROPERTIES
                          INSTALL_RPATH $ORIGIN VERSION ${PROJECT_VERSION} SOVERSION ${apollo_oauth_soversion})
endif()

# apollo_oauth_warnings is linked as $<BUILD_INTERFACE:...> only, so it never reaches the export.
# The static libraries' private Boost.JSON and Boost.URL are exported as $<LINK_ONLY:...>, which
# is why the package config finds those components for static builds.
install(TARGETS ${apollo_oauth_installed}
        EXPORT apollo_oauth_targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp")
install(EXPORT apollo_oauth_targets NAMESPACE apollo_oauth:: FILE apollo_oauthTargets.cmake
        DESTINATION ${APOLLO_OAUTH_INSTALL_CMAKEDIR})

# Before 1.0 a minor release may break the API (semver §4), so 0.1 only satisfies requests for
# 0.1.x; from 1.0 on, any release of the same major version does.
if(PROJECT_VERSION_MAJOR EQUAL 0)
    set(apollo_oauth_compatibility SameMinorVersion)
else()
    set(apollo_oauth_compatibility SameMajorVersion)
endif()
write_basic_package_version_file(${PROJECT_BINARY_DIR}/apollo_oauthConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY ${apollo_oauth_compatibility})

# Static libraries need their private dependencies' libraries at the consumer's link step.
if(BUILD_SHARED_LIBS)
    set(APOLLO_OAUTH_BOOST_COMPONENTS "")
else()
    set(APOLLO_OAUTH_BOOST_COMPONENTS "json url")
endif()
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/apollo_oauthConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/apollo_oauthConfig.cmake
                              INSTALL_DESTINATION ${APOLLO_OAUTH_INSTALL_CMAKEDIR})
install(FILES ${PROJECT_BINARY_DIR}/apollo_oauthConfig.cmake ${PROJECT_BINARY_DIR}/apollo_oauthConfigVersion.cmake
        DESTINATION ${APOLLO_OAUTH_INSTALL_CMAKEDIR})
