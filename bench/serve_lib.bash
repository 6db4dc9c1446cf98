# serve_lib.bash - what the serving benchmarks share (sourced).

# listening_url LOG: waits up to a minute for `preft serve` to log that it
# listens, and prints its URL; prints the log on stderr and fails if not.
listening_url() {
  local u=
  for _ in $(seq 1 600); do
    u=$(sed -n 's/.*listening on \(http:[^ ]*\) .*/\1/p' "$1")
    [ -n "$u" ] && { echo "$u"; return 0; }
    sleep 0.1
  done
  cat "$1" >&2
  return 1
}
