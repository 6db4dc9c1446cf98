#!/usr/bin/env bash
# examples/embed (public API, libpreft.so) generates greedily the same tokens
# as `preft generate`, and its first token after the golden prompt of
# llama-gqa-rope3 is the argmax of the PyTorch float64 logits of that prompt.
# usage: embed_matches_cli.sh EMBED PREFT MODELS_DIR
set -euo pipefail
embed=$1 preft=$2 models=$3
fail=0

for name in llama-gqa-rope3 qwen2-bias-tied-bf16 llama-headdim-f16; do
  dir=$models/$name
  for prompt in 1,2,3 7; do
    want=$("$preft" generate -m "$dir" --ids "$prompt" -n 12 --temperature 0 --ignore-eos --print-ids --threads 2)
    got=$("$embed" "$dir" "$prompt" 12 2>/dev/null)
    if [[ "$got" != "$want" ]]; then
      echo "FAIL $name prompt $prompt: embed printed '$got', preft generate '$want'"
      fail=1
    fi
    if [[ $(wc -w <<<"$got") -ne 12 ]]; then
      echo "FAIL $name prompt $prompt: expected 12 tokens, got '$got'"
      fail=1
    fi
  done
done

# Independent reference: argmax of the last row of golden_logits.f64 [T, V].
dir=$models/llama-gqa-rope3
ids=$(cat "$dir/golden_ids.txt")
n_ids=$(tr ',' '\n' <<<"$ids" | wc -l)
vocab=256
want=$(od -An -v -t f8 -w8 "$dir/golden_logits.f64" | awk -v first=$(((n_ids - 1) * vocab)) -v vocab=$vocab '
  NR > first && NR <= first + vocab {
    id = NR - first - 1
    if (best == "" || $1 > best) { second = best; best = $1; arg = id } else if (second == "" || $1 > second) second = $1
  }
  END { if (best - second < 1e-3) { print "ambiguous" } else print arg }')
got=$("$embed" "$dir" "$ids" 1 2>/dev/null)
if [[ "$got" != "$want" ]]; then
  echo "FAIL golden: embed's first token after golden_ids.txt is '$got', the reference argmax '$want'"
  fail=1
fi

[[ $fail -eq 0 ]] && echo "ok: embed matches preft generate and the reference argmax"
exit $fail
