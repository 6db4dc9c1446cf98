#!/usr/bin/env bash
# End-to-end: `preft encode` (issue 16) on the tiny BERT references of
# tests/data/bert (tools/make_reference_bert.py): hidden states and pooler
# output against PyTorch, --text / --text-pair through a WordPiece
# vocabulary giving "[CLS] a [SEP] b [SEP]" with token types, and the errors.
source "$(dirname "$0")/e2e_lib.bash"

# max |float32 file - float64 file| over the first N values of each
max_abs() {
  paste <(od -An -v -t f4 -w4 "$1" | head -n "$3") <(od -An -v -t f8 -w8 "$2" | head -n "$3") |
    awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; n++ } END { if (n == 0) print "none"; else printf "%.3g\n", m }'
}

"$bin" encode --help >"$tmp/help" 2>&1
check "encode --help exits 0 and names --text-pair" grep -q -- "--text-pair" "$tmp/help"

m=$data/bert/bert-model-f32
case0=$(sed -n 1p "$m/cases.txt")
ids=${case0#ids=}
ids=${ids%% *}
types=${case0##*types=}
"$bin" encode -m "$m" --ids "$ids" --types "$types" -o "$tmp/h.f32" 2>"$tmp/err"
check "encode --ids exits 0" test $? -eq 0
check "the output holds 12 x 32 float32" test "$(stat -c %s "$tmp/h.f32")" -eq $((12 * 32 * 4))
d=$(max_abs "$tmp/h.f32" "$m/hidden.f64" $((12 * 32)))
check "hidden states match the PyTorch reference (max abs $d < 1e-4)" below "$d" 1e-4
"$bin" encode -m "$m" --ids "$ids" --types "$types" --pooled -o "$tmp/p.f32" 2>"$tmp/err"
check "--pooled writes 32 float32" test "$(stat -c %s "$tmp/p.f32" 2>/dev/null)" = 128
d=$(max_abs "$tmp/p.f32" "$m/pooled.f64" 32)
check "pooled output matches the reference (max abs $d < 1e-4)" below "$d" 1e-4
"$bin" encode -m "$m" --ids "$ids" -o "$tmp/h0.f32" 2>/dev/null
check "token types change the output (no --types: all 0)" bash -c '! cmp -s "$1" "$2"' _ "$tmp/h.f32" "$tmp/h0.f32"

b=$data/bert/bert-cls-bf16
case1=$(sed -n 2p "$b/cases.txt")
ids1=${case1#ids=}
ids1=${ids1%% *}
"$bin" encode -m "$b" --ids "$ids1" --types "${case1##*types=}" -o "$tmp/b.f32" 2>"$tmp/err"
skip=$(($(sed -n 1p "$b/cases.txt" | tr -cd , | wc -c) / 2 + 1)) # case 0's token count (ids and types)
skip=$((skip * 32))
d=$(paste <(od -An -v -t f4 -w4 "$tmp/b.f32") <(od -An -v -t f8 -w8 "$b/hidden.f64" | tail -n +$((skip + 1)) | head -n $((5 * 32))) |
  awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; n++ } END { if (n == 0) print "none"; else printf "%.3g\n", m }')
check "BF16 sequence-classification checkpoint (bert. prefix) matches (max abs $d < 1e-4)" below "$d" 1e-4

# text: a model directory with a WordPiece vocabulary of the model's 64 ids
tm=$tmp/textmodel
mkdir -p "$tm"
ln -s "$m/config.json" "$tm/config.json"
ln -s "$m/model.safetensors" "$tm/model.safetensors"
{
  printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' the cat dog sat on a mat '##s' '.' ','
  for i in $(seq 15 63); do echo "w$i"; done
} >"$tm/vocab.txt"
"$bin" encode -m "$tm" --text "The CATS sat." --text-pair "A dog, on a mat" -o "$tmp/t.f32" 2>"$tmp/err"
check "encode --text --text-pair exits 0" test $? -eq 0
check "[CLS] the cat ##s sat . [SEP] a dog , on a mat [SEP]" grep -qx "preft encode: ids 2,5,6,12,8,13,3,10,7,14,9,10,11,3" "$tmp/err"
check "token types 0 through the first [SEP], then 1" grep -qx "preft encode: types 0,0,0,0,0,0,0,1,1,1,1,1,1,1" "$tmp/err"
"$bin" encode -m "$tm" --ids 2,5,6,12,8,13,3,10,7,14,9,10,11,3 --types 0,0,0,0,0,0,0,1,1,1,1,1,1,1 -o "$tmp/i.f32" 2>/dev/null
check "the text gives what its ids and types give" cmp -s "$tmp/t.f32" "$tmp/i.f32"
"$bin" encode -m "$tm" --text "the cat" -o "$tmp/s.f32" 2>"$tmp/err"
check "a single text is [CLS] the cat [SEP], all type 0" grep -qx "preft encode: types 0,0,0,0" "$tmp/err"

# errors
"$bin" encode -m "$data/bert/bert-mlm-gamma-f16" --ids 1,2 --pooled -o "$tmp/x" 2>"$tmp/err"
check "--pooled without a pooler exits 1" test $? -eq 1
check "... saying the model has no pooler" grep -q "no pooler" "$tmp/err"
"$bin" encode -m "$m" --ids 1,64 -o "$tmp/x" 2>"$tmp/err"
check "an id outside the vocabulary exits 1 naming it" bash -c 'test $1 -eq 1 && grep -q "token id 64" "$2"' _ $? "$tmp/err"
"$bin" encode -m "$m" --text hello -o "$tmp/x" 2>"$tmp/err"
check "--text without a tokenizer exits 1" bash -c 'test $1 -eq 1 && grep -q "no tokenizer.json or vocab.txt" "$2"' _ $? "$tmp/err"
"$bin" encode -m "$m" --ids 1,2 --types 0 -o "$tmp/x" 2>"$tmp/err"
check "--types of another length is a usage error (2)" test $? -eq 2
"$bin" encode -m "$m" --ids 1 --text a -o "$tmp/x" 2>"$tmp/err"
check "--ids with --text is a usage error (2)" test $? -eq 2
mkdir -p "$tmp/cut"
cp "$m/config.json" "$tmp/cut/"
head -c 5000 "$m/model.safetensors" >"$tmp/cut/model.safetensors"
"$bin" encode -m "$tmp/cut" --ids 1,2 -o "$tmp/x" 2>"$tmp/err"
check "a truncated checkpoint exits 1 naming the file" bash -c 'test $1 -eq 1 && grep -q "cut/model.safetensors" "$2"' _ $? "$tmp/err"
check "no output file is left behind by failures" test ! -e "$tmp/x"
# the benchmark runs and reports what it measured
"$bin" bench encoder --shape bert-tiny --layers 1 --seq-len 8 --batch 1,2 --reps 1 --threads 1 --json "$tmp/bench.json" >"$tmp/bench.txt" 2>&1
check "bench encoder exits 0" test $? -eq 0
check "bench encoder prints the sgemm ceiling and a row per batch size" bash -c 'grep -q "sgemm 1024^3" "$1" && test "$(grep -cE "^ +[12] \|" "$1")" -eq 2' _ "$tmp/bench.txt"
check "bench encoder --json lists both batch sizes with positive tokens/s" bash -c 'test "$(jq "[.results[] | select(.tokens_per_s > 0)] | length" "$1")" -eq 2' _ "$tmp/bench.json"
"$bin" bench encoder --shape bert-huge >"$tmp/bench.txt" 2>&1
check "an unknown shape exits 1 naming the known ones" bash -c 'test $1 -eq 1 && grep -q "bert-base" "$2"' _ $? "$tmp/bench.txt"
e2e_exit
