#!/usr/bin/env bash
# The terminal task suite in tasks/ (issue 19 item 6), checked without
# running it: every task has the Terminal-Bench 2.x files, its task.toml
# has the required keys with sane values (read with awk, independently of
# preft's TOML parser), its Dockerfile uses only instructions that build
# offline, its scripts are executable and parse, names are unique, and the
# verifier writes a reward. (tasks_suite_run.sh runs the suite.)
source "$(dirname "$0")/e2e_lib.bash"
root=$(cd "$(dirname "$0")/../.." && pwd)
tasks=$root/tasks
min_tasks=20

# toml_flat FILE: "section.key<TAB>value" for each key = value line (the
# subset the suite uses: [section] headers, scalars, one-line arrays);
# anything else is printed as "!bad<TAB>line".
toml_flat() {
  awk '
    /^[[:space:]]*(#|$)/ { next }
    /^[[:space:]]*\[[A-Za-z0-9_.-]+\][[:space:]]*$/ { s = $0; gsub(/[][[:space:]]/, "", s); next }
    /^[[:space:]]*[A-Za-z0-9_-]+[[:space:]]*=/ {
      k = $0; sub(/[[:space:]]*=.*/, "", k); gsub(/[[:space:]]/, "", k)
      v = $0; sub(/^[^=]*=[[:space:]]*/, "", v); sub(/[[:space:]]+$/, "", v)
      print s "." k "\t" v; next
    }
    { print "!bad\t" $0 }' "$1"
}
# a positive number: digits with an optional fraction, not all of them zero
is_num() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ && $1 =~ [1-9] ]]; }
is_str() { [[ $1 =~ ^\"[^\"]+\"$ ]]; }

task_ok() { # task_ok DIR: prints what is wrong, returns 1 if anything is
  local d=$1 name bad=() f flat v ins k
  local -A kv=()
  name=$(basename "$d")
  for f in instruction.md task.toml environment/Dockerfile solution/solve.sh tests/test.sh; do
    [ -s "$d/$f" ] || bad+=("missing or empty $f")
  done
  for f in solution/solve.sh tests/test.sh; do
    [ -x "$d/$f" ] || bad+=("$f is not executable")
  done
  while IFS= read -r -d '' f; do
    bash -n "$f" 2>/dev/null || bad+=("${f#"$d"/} does not parse (bash -n)")
  done < <(find "$d" -name '*.sh' -print0)
  if [ -s "$d/task.toml" ]; then
    flat=$(toml_flat "$d/task.toml")
    # kv[KEY]: the first value of each key (a bash array, not an awk per key:
    # at about fifty processes a task this test timed out on a busy machine)
    while IFS=$'\t' read -r k v _; do [[ -v kv[$k] ]] || kv[$k]=$v; done <<<"$flat"
    grep -q '^!bad' <<<"$flat" && bad+=("task.toml: unreadable line: $(grep -m1 '^!bad' <<<"$flat" | cut -f2)")
    [ "${kv[task.name]:-}" = "\"$name\"" ] || bad+=("task.toml: [task] name is not \"$name\"")
    is_str "${kv[task.version]:-}" || bad+=("task.toml: [task] version missing")
    is_str "${kv[task.description]:-}" || bad+=("task.toml: [task] description missing")
    [[ ${kv[metadata.difficulty]:-} =~ ^\"(easy|medium|hard)\"$ ]] || bad+=("task.toml: [metadata] difficulty not easy/medium/hard")
    is_str "${kv[metadata.category]:-}" || bad+=("task.toml: [metadata] category missing")
    [[ ${kv[metadata.tags]:-} =~ ^\[\".*\"\]$ ]] || bad+=("task.toml: [metadata] tags not a list of strings")
    for k in verifier.timeout_sec agent.timeout_sec environment.build_timeout_sec environment.cpus \
      environment.memory_mb environment.storage_mb; do
      is_num "${kv[$k]:-}" || bad+=("task.toml: $k missing or not a positive number")
    done
    [ "${kv[environment.allow_internet]:-}" = false ] || bad+=("task.toml: [environment] allow_internet must be false")
    v=${kv[verifier.timeout_sec]:-}
    is_num "$v" && awk -v x="$v" 'BEGIN { exit !(x > 120) }' && bad+=("task.toml: verifier timeout $v s: tests must run in seconds")
  fi
  if [ -s "$d/environment/Dockerfile" ]; then
    # instructions (continuation lines joined), first one FROM
    ins=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$d/environment/Dockerfile" | grep -Ev '^[[:space:]]*(#|$)')
    [[ $(head -1 <<<"$ins") =~ ^FROM[[:space:]] ]] || bad+=("Dockerfile: first instruction is not FROM")
    grep -q '^WORKDIR /' <<<"$ins" || bad+=("Dockerfile: no absolute WORKDIR")
    v=$(grep -Ev '^(FROM|WORKDIR|ENV|ARG|COPY|ADD|RUN)[[:space:]]' <<<"$ins" | head -1)
    [ -z "$v" ] || bad+=("Dockerfile: instruction the harness does not build: $v")
    v=$(grep -E '^RUN[[:space:]]' <<<"$ins" | grep -E '(^|[^[:alnum:]-])(apt-get|apt|pip3?|curl|wget|git clone|npm)[[:space:]]' | head -1)
    [ -z "$v" ] || bad+=("Dockerfile: RUN needs the network: $v")
    while read -r _ src _; do
      src=${src%/}
      [ -e "$d/environment/$src" ] || bad+=("Dockerfile: COPY source $src missing")
    done < <(grep -E '^(COPY|ADD)[[:space:]]' <<<"$ins" | grep -v -- '--from')
  fi
  if [ -s "$d/tests/test.sh" ]; then
    grep -q '/logs/verifier/reward.txt' "$d/tests/test.sh" || bad+=("tests/test.sh never writes /logs/verifier/reward.txt")
    grep -q '/solution' "$d/tests/test.sh" && bad+=("tests/test.sh reads /solution (only the oracle has it)")
  fi
  # the suite must not depend on this machine: no workspace or pyenv paths
  v=$(grep -rlE '/work/|\.pyenv' "$d" 2>/dev/null | head -1)
  [ -z "$v" ] || bad+=("${v#"$d"/} names a path of the machine the task was written on")
  [ ${#bad[@]} -eq 0 ] && return 0
  for v in "${bad[@]}"; do echo "  $name: $v"; done
  return 1
}

dirs=()
for d in "$tasks"/*/; do dirs+=("${d%/}"); done
check "at least $min_tasks tasks in tasks/ (found ${#dirs[@]})" test ${#dirs[@]} -ge $min_tasks
for d in "${dirs[@]}"; do
  check "task $(basename "$d") has the required files, keys and clean scripts" task_ok "$d"
done
dups=$(for d in "${dirs[@]}"; do toml_flat "$d/task.toml" | awk -F'\t' '$1 == "task.name" { print $2 }'; done | sort | uniq -d)
check "task names are unique" test -z "$dups"
check "tasks/README.md lists every task" bash -c '
  for d in "$@"; do grep -q "\`$(basename "$d")\`" "'"$tasks"'/README.md" || { echo "  not listed: $(basename "$d")"; exit 1; }; done' _ "${dirs[@]}"
e2e_exit
