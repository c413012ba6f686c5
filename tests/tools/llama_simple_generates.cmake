# llama.cpp's own llama-simple loads a test model and generates with it: it must print the
# prompt followed by generated text on stdout, and report on stderr that it decoded exactly the
# N tokens asked for (greedy sampling on a deterministic model: no early end of generation).
# An exit code of 0 alone would pass a tool that loaded nothing and printed nothing.
#   cmake -DLLAMA_SIMPLE=<bin> -DMODEL=<gguf> -DPROMPT=<text> -DN=<tokens> -P llama_simple_generates.cmake
execute_process(COMMAND ${LLAMA_SIMPLE} -m ${MODEL} -n ${N} ${PROMPT}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "llama-simple exited with ${rc}:\n${err}")
endif()
string(REGEX REPLACE "\n$" "" out "${out}")  # llama-simple ends with a newline of its own
string(LENGTH "${PROMPT}" n_prompt)
string(LENGTH "${out}" n_out)
string(FIND "${out}" "${PROMPT}" at)
if(NOT at EQUAL 0 OR NOT n_out GREATER n_prompt)
  message(FATAL_ERROR "llama-simple did not print the prompt '${PROMPT}' followed by generated text; stdout was:\n'${out}'")
endif()
if(NOT err MATCHES "decoded ${N} tokens in")
  string(REGEX MATCH "[^\n]*decoded[^\n]*" line "${err}")
  message(FATAL_ERROR "llama-simple did not decode the ${N} tokens asked for ('${line}')")
endif()
message(STATUS "llama-simple: '${out}' (${N} tokens)")
