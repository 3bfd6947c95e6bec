# Writes <build>/link_graph.txt: one line per emotune library, "target: dep;dep;..." with its
# direct LINK_LIBRARIES and INTERFACE_LINK_LIBRARIES as CMake holds them after configuration.
# scripts/deps.py closes it transitively and checks it against the allowed edges (the
# deps_layering test), so a library that reaches OpenCV or a higher module through a link is caught.
function(emotune_write_link_graph)
  set(lines "")
  foreach(t IN LISTS ARGN)
    if(NOT TARGET ${t})
      continue()
    endif()
    get_target_property(type ${t} TYPE)
    set(deps "")
    if(NOT type STREQUAL "INTERFACE_LIBRARY")
      get_target_property(direct ${t} LINK_LIBRARIES)
      if(direct)
        list(APPEND deps ${direct})
      endif()
    endif()
    get_target_property(iface ${t} INTERFACE_LINK_LIBRARIES)
    if(iface)
      list(APPEND deps ${iface})
    endif()
    # A static library's PRIVATE links appear as $<LINK_ONLY:x>: they are still linked.
    string(REGEX REPLACE "\\$<LINK_ONLY:([^>]*)>" "\\1" deps "${deps}")
    list(REMOVE_DUPLICATES deps)
    string(APPEND lines "${t}: ${deps}\n")
  endforeach()
  file(WRITE ${CMAKE_BINARY_DIR}/link_graph.txt "${lines}")
endfunction()
