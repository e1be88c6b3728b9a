# cmake/install_etc.cmake — runs at install time (cmake --install, cpack), when
# the prefix is known: the systemd unit names the installed binary and config
# (/usr/bin/mtld, /etc/mtld/mtld.conf for --prefix /usr, as in the source; a
# /usr/local install gets /usr/local/bin/mtld and /usr/local/etc/mtld), and the
# example config goes to /etc/mtld (PREFIX/etc/mtld for other prefixes), as
# the GNU convention has it. DESTDIR is honoured by file(INSTALL).
# Set by the caller: MTLD_SRC (source dir), MTLD_GEN (a build-tree scratch dir).
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(_etc "/etc")
else()
  set(_etc "${CMAKE_INSTALL_PREFIX}/etc")
endif()
file(READ "${MTLD_SRC}/systemd/mtld.service" _unit)
string(REPLACE "/usr/bin/mtld" "${CMAKE_INSTALL_PREFIX}/bin/mtld" _unit "${_unit}")
string(REPLACE "/etc/mtld/" "${_etc}/mtld/" _unit "${_unit}")
# A scratch dir of its own: installs may run side by side (the tests do).
string(RANDOM LENGTH 16 _r)
set(_gen "${MTLD_GEN}/${_r}")
file(WRITE "${_gen}/mtld.service" "${_unit}")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${_gen}/mtld.service" "${MTLD_SRC}/systemd/mtld.socket")
file(REMOVE_RECURSE "${_gen}")
file(INSTALL DESTINATION "${_etc}/mtld" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${MTLD_SRC}/systemd/mtld.conf")
