#!/usr/bin/env bash
# Writes one supervised fine-tuning set per president from the State of the
# Union split (data/sotu/split.tsv), for `preft train sft --adapters-from`:
#   OUT/<name>/train.jsonl  from the president's training speeches only
#   OUT/<name>/eval.jsonl   from the president's held-out speech (or fifth)
# <name> is the president's name in lower case with hyphens (abraham-lincoln),
# a safe adapter name. Each line is {"prompt": P, "completion": C}: P is the
# header "[YEAR] Name:" and up to --context bytes of the text before the
# passage (whole sentences; a longer sentence keeps its last words), C is the
# passage that follows (whole sentences up to --passage bytes, at least one
# sentence, a longer one cut after a word), with a leading space as in the
# text. Passages start at sentence boundaries spread evenly over the text, so
# the output is the same on every run (no randomness) and the number of
# examples per president is bounded: --train N and --eval M.
# Usage: scripts/make-president-data.sh OUT [--train N] [--eval M]
#          [--context BYTES] [--passage BYTES] [--only "Name,Name"]
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
out=${1:-}
[ -n "$out" ] && [ "${out#-}" = "$out" ] || { usage >&2; exit 2; }
shift
n_train=64 n_eval=16 context=320 passage=320 only=
while [ $# -gt 0 ]; do
  case "$1" in
    --train) n_train=$2; shift 2 ;;
    --eval) n_eval=$2; shift 2 ;;
    --context) context=$2; shift 2 ;;
    --passage) passage=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "make-president-data: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for v in "$n_train" "$n_eval" "$context" "$passage"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "make-president-data: '$v' is not a positive integer" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
names=$(tail -n +2 data/sotu/split.tsv | cut -f2 | sort -u)
if [ -n "$only" ]; then
  names=$(tr ',' '\n' <<<"$only")
  while IFS= read -r n; do
    cut -f2 data/sotu/split.tsv | grep -qxF "$n" || { echo "make-president-data: no president '$n' in data/sotu/split.tsv" >&2; exit 2; }
  done <<<"$names"
fi
count=0
while IFS= read -r who; do
  slug=$(tr 'A-Z' 'a-z' <<<"$who" | sed 's/[^a-z0-9]\{1,\}/-/g; s/^-//; s/-$//')
  mkdir -p "$out/$slug"
  for side in train heldout; do
    rm -rf "$tmp/$side" && mkdir -p "$tmp/$side"
    bash scripts/sotu-extract.sh "$side" "$tmp/$side" "$who" >/dev/null
    # the speeches in year order, each as "YEAR<TAB>PATH" (the file name starts with the year)
    list=$(cd "$tmp/$side" && ls | sort | awk -v d="$tmp/$side" '{ print substr($0, 1, 4) "\t" d "/" $0 }')
    [ -n "$list" ] || { echo "make-president-data: no $side text for '$who'" >&2; exit 1; }
    file=train.jsonl n=$n_train
    [ "$side" = heldout ] && file=eval.jsonl n=$n_eval
    LC_ALL=C awk -v who="$who" -v n="$n" -v ctx="$context" -v psg="$passage" -v list="$list" -f - >"$out/$slug/$file.tmp" <<'AWK'
# JSON string body: backslash, quote; other control characters were turned into spaces
function esc(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return s }
BEGIN {
  ns = 0
  k = split(list, rows, "\n")
  for (r = 1; r <= k; r++) {
    split(rows[r], f, "\t"); year = f[1]; text = ""
    while ((getline line < f[2]) > 0) text = text " " line
    close(f[2])
    gsub(/[\001-\037\177]/, " ", text); gsub(/  +/, " ", text); sub(/^ /, "", text); sub(/ $/, "", text)
    # sentences: split after . ? ! (and a closing quote or bracket) before a space
    first = ns
    while (text != "") {
      if (match(text, /[.?!]["')\]]* /)) { sent[ns] = substr(text, 1, RSTART + RLENGTH - 2); text = substr(text, RSTART + RLENGTH) }
      else { sent[ns] = text; text = "" }
      yr[ns] = year; start[ns] = first; ns++
    }
  }
  if (ns < 2) exit 1
  # n passages, evenly spaced over the sentences (the first one never starts a
  # speech's text with no context before it unless a speech is one sentence long)
  made = 0
  for (e = 0; e < n; e++) {
    i = int((e + 0.5) * ns / n)
    if (i <= start[i] && i + 1 < ns && start[i + 1] == start[i]) i++
    if (i in used) continue
    used[i] = 1
    # context: whole sentences of the same speech going back, up to ctx bytes
    c = ""
    for (j = i - 1; j >= start[i]; j--) {
      t = (c == "") ? sent[j] : sent[j] " " c
      if (length(t) > ctx) {
        if (c == "") { # one long sentence: its last words
          t = substr(sent[j], length(sent[j]) - ctx + 1); sub(/^[^ ]* /, "", t); c = t
        }
        break
      }
      c = t
    }
    # passage: whole sentences up to psg bytes, at least one (cut after a word)
    p = ""
    for (j = i; j < ns && yr[j] == yr[i] && start[j] == start[i]; j++) {
      t = (p == "") ? sent[j] : p " " sent[j]
      if (length(t) > psg) {
        if (p == "") { t = substr(sent[j], 1, psg); sub(/ [^ ]*$/, "", t); p = t }
        break
      }
      p = t
    }
    if (p == "") continue
    prompt = "[" yr[i] "] " who ":" (c == "" ? "" : " " c)
    printf "{\"prompt\": \"%s\", \"completion\": \" %s\"}\n", esc(prompt), esc(p)
    made++
  }
  if (made == 0) exit 1
}
AWK
    mv "$out/$slug/$file.tmp" "$out/$slug/$file"
  done
  count=$((count + 1))
done <<<"$names"
echo "make-president-data: $count presidents in $out ($n_train training and $n_eval held-out examples each at most)" >&2
