#!/usr/bin/env bash
# Quality benchmark: quantize a model with the project's quantizer on the exact calibration windows
# of shared/data/calib, then measure held-out and WikiText-2 perplexity of the written checkpoint
# with the project's runtime — the protocol of shared/reference/quality.md.
#
#   benchmarks/quality.sh MODEL_DIR VARIANT... [-- extra gptq-quantize flags]
#   variants: w4sym w4asym w4act w4actstatic w4g-1 w3 w2g64asym w8 fp
#   env: BUILD (default build), SHARED (default ../shared), OUT (default out/quality), WIKI=0 to skip WikiText-2
#
# Prints one markdown row per variant: | model | variant | held-out | WikiText-2 | quantize s | peak RSS MiB |
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
OUT=${OUT:-out/quality}
WIKI=${WIKI:-1}
model=$1; shift
variants=()
while [[ $# -gt 0 && $1 != -- ]]; do variants+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
extra=("$@")
mkdir -p "$OUT"
name=$(basename "$model")

flags_for() {
  case $1 in
    w4sym)       echo "--bits 4 --group-size 128 --sym --no-act-order --no-static-groups" ;;
    w4asym)      echo "--bits 4 --group-size 128 --asym --no-act-order --no-static-groups" ;;
    w4act)       echo "--bits 4 --group-size 128 --sym --act-order --no-static-groups" ;;
    w4actstatic) echo "--bits 4 --group-size 128 --sym --act-order --static-groups" ;;
    w4g-1)       echo "--bits 4 --group-size -1 --sym --no-act-order --no-static-groups" ;;
    w3)          echo "--bits 3 --group-size 128 --sym --no-act-order --no-static-groups" ;;
    w2g64asym)   echo "--bits 2 --group-size 64 --asym --no-act-order --no-static-groups" ;;
    w8)          echo "--bits 8 --group-size 128 --sym --no-act-order --no-static-groups" ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}

ppl() {  # dir file
  "$BUILD"/examples/gptq-perplexity -q -m "$1" -f "$2" --seq-len 1024 --backend "${BACKEND:-auto}" | sed -n 's/^PPL = \([0-9.]*\).*/\1/p'
}

for v in "${variants[@]}"; do
  dir=$model secs=0 rss=0
  if [[ $v != fp ]]; then
    dir="$OUT/$name-$v"
    timer=(/usr/bin/time -o "$OUT/$name-$v.time" -f "%e %M")
    [[ -x /usr/bin/time ]] || { timer=(); t0=$(date +%s); }
    # shellcheck disable=SC2046  # the variant's flags are a list
    "${timer[@]}" "$BUILD"/examples/gptq-quantize "$model" "$dir" $(flags_for "$v") --calib-tokens "$SHARED/data/calib/c4-docs30m-128x1024.bin" \
        --calib-seq-len 1024 --calib-samples 128 --backend "${QBACKEND:-auto}" "${extra[@]}" >"$OUT/$name-$v.log" 2>&1
    if ((${#timer[@]})); then read -r secs rss < "$OUT/$name-$v.time"; else secs=$(($(date +%s) - t0)); fi
  fi
  held=$(ppl "$dir" "$SHARED/data/docs-heldout.txt")
  wiki="-"
  [[ $WIKI == 1 ]] && wiki=$(ppl "$dir" "$SHARED/data/wikitext2/wiki.test.raw")
  printf '| %s | %s | %s | %s | %.0f | %d |\n' "$name" "$v" "$held" "$wiki" "$secs" $((rss / 1024))
done
