# cmake/package.cmake — `cpack -G DEB` (from the build directory) makes
# mtld_VERSION_ARCH.deb from the install rules of install.cmake:
#  - Depends: the runtime library packages, found by dpkg-shlibdeps from the
#    binaries themselves (libsqlite3-0, libmicrohttpd12, libopenblas0, ...);
#  - postinst creates the mtld system user and its directories
#    (systemd-sysusers / systemd-tmpfiles, or useradd without systemd) and
#    enables and starts nothing; on upgrade it restarts mtld only if it runs;
#  - /etc/mtld/mtld.conf is a conffile (local edits survive upgrades).
# tests/deploy/deb.sh builds it and checks all of that.
set(CPACK_PACKAGE_NAME mtld)
set(CPACK_PACKAGE_VENDOR "mtld")
set(CPACK_PACKAGE_CONTACT "mtld maintainers <mtld@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "training daemon for multi-task learning and meta-learning")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "mtld serves multi-task and meta-learning training over HTTP: upload CSV
datasets, define tasks on their columns, submit training jobs (shared
trunks, mixtures of experts, MAML, Reptile, ProtoNets...), and fetch
metrics, safetensors checkpoints and predictions. Data lives in SQLite;
training runs on OpenBLAS. mtlctl is its command-line client. Nothing is
enabled on install: systemctl enable --now mtld (or mtld.socket).")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Install with DESTDIR into the staging tree, so CMAKE_INSTALL_PREFIX is /usr
# at install time and install_etc.cmake puts the config in /etc.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "file:///usr/share/doc/mtld/README.md")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
    ${CMAKE_SOURCE_DIR}/packaging/debian/prerm
    ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_GENERATOR DEB)
include(CPack)
