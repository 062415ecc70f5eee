# The CUDA benchmark programs (included from examples/CMakeLists.txt when GPTQ_CUDA is on). They
# reach the backend's internals (kernels, synthetic weights), so they link the object library the
# way the tests do rather than the shared library's public API.
foreach(prog bench-kernels bench-e2e bench-quantize bench-stream bench-boundary)
  add_executable(${prog} ${prog}.cu)
  target_link_libraries(${prog} PRIVATE gptq_objects)
  target_compile_options(${prog} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -lineinfo>)
endforeach()

# bench-e2e --trace: the decode step's kernel timeline through CUPTI (part of the CUDA Toolkit;
# without it the option reports itself unavailable).
target_sources(bench-e2e PRIVATE kernel_trace.cpp)
if(TARGET CUDA::cupti)
  target_link_libraries(bench-e2e PRIVATE CUDA::cupti)
  target_compile_definitions(bench-e2e PRIVATE GPTQ_HAVE_CUPTI=1)
else()
  message(STATUS "CUPTI not found: bench-e2e --trace unavailable")
endif()
