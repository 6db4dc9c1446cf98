# peer_lib.bash - what the llama.cpp side-by-side scripts share (sourced
# after `set -euo pipefail`; they call their own name `$me`).

# peer_usage SCRIPT: the script's header comment, as its --help.
peer_usage() { sed -n '2,/^set -euo/p' "$1" | sed '$d; s/^# \{0,1\}//'; }

# peer_src SCRIPT DIR: prints DIR's absolute path after checking that it
# is a llama.cpp checkout; exits 2 with a message otherwise.
peer_src() {
  local me d
  me=$(basename "$1" .sh)
  d=$(cd "$2" 2>/dev/null && pwd) || { echo "$me: no directory $2" >&2; exit 2; }
  [ -f "$d/include/llama.h" ] || { echo "$me: $d is not a llama.cpp checkout (no include/llama.h)" >&2; exit 2; }
  echo "$d"
}

# peer_build SRC BUILD LOGDIR EXAMPLES TARGET...: configures llama.cpp (CPU
# only, Release, shared libraries; its examples ON or OFF) into BUILD and
# builds the targets; the logs go to LOGDIR, their tail to stderr on failure.
peer_build() {
  local src=$1 build=$2 logs=$3 examples=$4
  shift 4
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES="$examples" -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_UI=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF >"$logs/cmake.log" 2>&1 ||
    { tail -20 "$logs/cmake.log" >&2; return 1; }
  cmake --build "$build" -j"$(nproc)" --target "$@" >"$logs/build.log" 2>&1 ||
    { tail -20 "$logs/build.log" >&2; return 1; }
}
