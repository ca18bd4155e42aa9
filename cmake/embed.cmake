# embed.cmake - compiles a file in as a NUL-terminated C string.
#
# In a CMakeLists.txt:  include(cmake/embed.cmake)
#                       herald_embed(<target> <symbol> <file relative to the source dir>)
# adds a generated <symbol>.c defining `const char <symbol>[]` to <target>;
# it is regenerated whenever the file changes. Pure CMake (file(READ HEX)),
# so the build needs no xxd.

if(CMAKE_SCRIPT_MODE_FILE)
  # cmake -DIN=<file> -DOUT=<c file> -DSYMBOL=<name> -P embed.cmake
  file(READ "${IN}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "((0x..,){16})" "\\1\n    " bytes "${bytes}")
  file(WRITE "${OUT}"
       "/* Generated from ${IN} by cmake/embed.cmake; do not edit. */\n"
       "const char ${SYMBOL}[] = {\n    ${bytes}0x00\n};\n")
  return()
endif()

function(herald_embed target symbol file)
  set(in ${CMAKE_SOURCE_DIR}/${file})
  set(out ${CMAKE_BINARY_DIR}/embed/${symbol}.c)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DIN=${in} -DOUT=${out} -DSYMBOL=${symbol}
            -P ${CMAKE_SOURCE_DIR}/cmake/embed.cmake
    DEPENDS ${in} ${CMAKE_SOURCE_DIR}/cmake/embed.cmake
    COMMENT "Embedding ${file}"
    VERBATIM)
  target_sources(${target} PRIVATE ${out})
endfunction()
