# cmake/install.cmake — what `cmake --install build --prefix /usr` and the .deb
# put where (included from the top CMakeLists.txt):
#   bin/mtld, bin/mtlctl
#   lib/systemd/system/mtld.service, mtld.socket   (nothing enabled)
#   lib/sysusers.d/mtld.conf, lib/tmpfiles.d/mtld.conf   (the mtld user, dirs)
#   /etc/mtld/mtld.conf            (the annotated example; a conffile in the .deb)
#   share/man/man8/mtld.8.gz, share/man/man1/mtlctl.1.gz
#   share/bash-completion/completions/mtlctl
#   share/doc/mtld/                (README, guide, API, operations, architecture,
#                                   OpenAPI, example job specs)
# tests/deploy/ checks the list (install.sh) and the package (deb.sh).
include(GNUInstallDirs)

install(TARGETS mtld mtlctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The unit (with the prefix's paths) and the config: see install_etc.cmake.
install(CODE "set(MTLD_SRC \"${CMAKE_SOURCE_DIR}\")\nset(MTLD_GEN \"${CMAKE_BINARY_DIR}/install-gen\")")
install(SCRIPT ${CMAKE_SOURCE_DIR}/cmake/install_etc.cmake)
install(FILES systemd/mtld.sysusers DESTINATION lib/sysusers.d RENAME mtld.conf)
install(FILES systemd/mtld.tmpfiles DESTINATION lib/tmpfiles.d RENAME mtld.conf)

# Man pages, compressed as Debian wants them (gzip -n: reproducible).
find_program(GZIP_EXECUTABLE gzip REQUIRED)
set(_man_gz)
foreach(page mtld.8 mtlctl.1)
  add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/man/${page}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
    COMMAND ${GZIP_EXECUTABLE} -9nc ${CMAKE_SOURCE_DIR}/docs/${page} > ${CMAKE_BINARY_DIR}/man/${page}.gz
    DEPENDS ${CMAKE_SOURCE_DIR}/docs/${page} VERBATIM)
  list(APPEND _man_gz ${CMAKE_BINARY_DIR}/man/${page}.gz)
endforeach()
add_custom_target(man ALL DEPENDS ${_man_gz})
install(FILES ${CMAKE_BINARY_DIR}/man/mtld.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${CMAKE_BINARY_DIR}/man/mtlctl.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# (The bash completion, client/mtlctl.bash, is installed by client/CMakeLists.txt.)

# Documentation.
install(FILES README.md docs/guide.md docs/api.md docs/operations.md docs/architecture.md
              docs/openapi.yaml
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
