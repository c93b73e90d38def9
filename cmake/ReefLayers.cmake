# reef_layer(<name> [TORCH] DEPS <layers...> LIBS <libs...>)
#
# One static library per layer from src/reef/<name>/*.cpp and <name>/*/*.cpp. A layer sees only its own headers and
# those of the layers it links: each gets an include root in the build tree that holds a symlink
# to its own folder only, and include roots propagate through PUBLIC links. So an upward include
# ("reef/train/..." from models/) is a compile error, as DESIGN.md requires.
#
# Layers that use torch share one precompiled header (reef_pch, <torch/torch.h>).
set(REEF_SRC_ROOT "${PROJECT_SOURCE_DIR}/src/reef")

add_library(reef_pch STATIC "${PROJECT_SOURCE_DIR}/cmake/pch_anchor.cpp")
target_link_libraries(reef_pch PUBLIC reef::torch)
target_precompile_headers(reef_pch PUBLIC <torch/torch.h>)

function(reef_layer name)
  cmake_parse_arguments(L "TORCH" "" "DEPS;LIBS" ${ARGN})
  # A layer's sources and those of its subfolders one level down (models/<family>/).
  file(GLOB _srcs CONFIGURE_DEPENDS "${REEF_SRC_ROOT}/${name}/*.cpp"
       "${REEF_SRC_ROOT}/${name}/*/*.cpp")
  list(FILTER _srcs EXCLUDE REGEX "/cli/main\\.cpp$")
  set(_inc "${CMAKE_BINARY_DIR}/include/${name}")
  file(MAKE_DIRECTORY "${_inc}/reef")
  file(CREATE_LINK "${REEF_SRC_ROOT}/${name}" "${_inc}/reef/${name}" SYMBOLIC)
  if(_srcs)
    add_library(reef_${name} STATIC ${_srcs})
    set(_vis PUBLIC)
  else()
    add_library(reef_${name} INTERFACE)
    set(_vis INTERFACE)
  endif()
  target_include_directories(reef_${name} ${_vis} "${_inc}")
  foreach(d ${L_DEPS})
    target_link_libraries(reef_${name} ${_vis} reef_${d})
  endforeach()
  if(L_LIBS)
    target_link_libraries(reef_${name} ${_vis} ${L_LIBS})
  endif()
  if(L_TORCH)
    target_link_libraries(reef_${name} ${_vis} reef::torch)
    if(_srcs)
      target_precompile_headers(reef_${name} REUSE_FROM reef_pch)
    endif()
  endif()
endfunction()
