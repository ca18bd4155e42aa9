# install.cmake - what `make install` (cmake --install) puts where, under
# CMAKE_INSTALL_PREFIX (default /usr/local; `make install PREFIX=/usr`) and
# $DESTDIR (staging for packages):
#
#   bin/herald
#   share/man/man1/herald.1                      docs/herald.1
#   lib/systemd/system/herald.service            ops/systemd/herald.service.in
#   <sysconf>/herald/herald.conf                 ops/herald.conf, only when absent
#   share/doc/herald/herald.conf.example         ops/herald.conf, always
#   share/herald/grafana/herald.json             the Grafana dashboard
#   share/herald/prometheus/herald-alerts.yml    the Prometheus alert rules
#
# <sysconf> is /etc for the prefix /usr and <prefix>/etc otherwise. The
# unit and the configuration path are worked out when installing, not when
# configuring, so that `cmake --install build --prefix P` is right too.
# HERALD_SYSTEMD_UNITDIR (a path relative to the prefix, or absolute)
# moves the unit.

include(GNUInstallDirs)
set(HERALD_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Where make install puts herald.service (relative to the prefix, or absolute)")

install(TARGETS herald RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CMAKE_SOURCE_DIR}/docs/herald.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CMAKE_SOURCE_DIR}/ops/herald.conf DESTINATION ${CMAKE_INSTALL_DOCDIR}
        RENAME herald.conf.example)
install(FILES ${CMAKE_SOURCE_DIR}/ops/grafana/herald.json
        DESTINATION ${CMAKE_INSTALL_DATADIR}/herald/grafana)
install(FILES ${CMAKE_SOURCE_DIR}/ops/prometheus/herald-alerts.yml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/herald/prometheus)

install(CODE "
  set(prefix \"\${CMAKE_INSTALL_PREFIX}\")
  if(prefix STREQUAL \"/usr\")
    set(sysconf \"/etc\")
  else()
    set(sysconf \"\${prefix}/etc\")
  endif()
  set(unitdir \"${HERALD_SYSTEMD_UNITDIR}\")
  if(NOT IS_ABSOLUTE \"\${unitdir}\")
    set(unitdir \"\${prefix}/\${unitdir}\")
  endif()
  set(HERALD_BIN \"\${prefix}/${CMAKE_INSTALL_BINDIR}/herald\")
  set(HERALD_CONF \"\${sysconf}/herald/herald.conf\")
  set(HERALD_ENV \"\${sysconf}/herald/herald.env\")
  # configure_file does not know DESTDIR (file(INSTALL) does)
  message(STATUS \"Installing: \$ENV{DESTDIR}\${unitdir}/herald.service\")
  configure_file(\"${CMAKE_SOURCE_DIR}/ops/systemd/herald.service.in\"
                 \"\$ENV{DESTDIR}\${unitdir}/herald.service\" @ONLY)
  if(EXISTS \"\$ENV{DESTDIR}\${HERALD_CONF}\")
    message(STATUS \"Keeping: \$ENV{DESTDIR}\${HERALD_CONF} (the new sample is herald.conf.example)\")
  else()
    file(INSTALL \"${CMAKE_SOURCE_DIR}/ops/herald.conf\" DESTINATION \"\${sysconf}/herald\"
         FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
")
