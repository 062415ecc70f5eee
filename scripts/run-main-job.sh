#!/usr/bin/env bash
# run-main-job.sh BUILD MODEL QMODEL [PROMPT] — what `make run` does:
#   1. quantize MODEL with GPTQ (library defaults: 4 bits, groups of 128, symmetric, act-order) into
#      QMODEL, calibrating on text the model generates itself (no data needed; few short samples so
#      it takes seconds). Skipped when QMODEL is already newer than every file of MODEL.
#   2. generate 100 tokens after PROMPT from QMODEL.
# Both steps use the GPU when there is one (--backend auto). Extra flags: QUANTIZE_FLAGS, CHAT_FLAGS.
set -euo pipefail

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; }
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then usage; exit 0; fi
if [[ $# -lt 3 ]]; then usage >&2; exit 1; fi
BUILD=$1 MODEL=$2 QMODEL=$3 PROMPT=${4:-The kernel scheduler}
BIN="$BUILD/examples"

die() { echo "run-main-job: $*" >&2; exit 1; }
for tool in gptq-quantize gptq-chat; do
  [[ -x "$BIN/$tool" ]] || die "$BIN/$tool not found: build first (make)"
done
[[ -f "$MODEL/config.json" ]] || die "'$MODEL' is not a model directory (no config.json)"

# QMODEL is current when it was written after the last change to any file of MODEL. gptq_quantize
# renames a finished checkpoint into place, so an existing config.json means a complete QMODEL.
stale=1
if [[ -f "$QMODEL/config.json" ]] && [[ -z "$(find -L "$MODEL" -type f -newer "$QMODEL/config.json" -print -quit)" ]]; then
  stale=0
fi

if ((stale)); then
  if [[ -e "$QMODEL" ]]; then
    # Only ever remove what looks like a checkpoint this job wrote, never an arbitrary directory.
    [[ -f "$QMODEL/quantize_config.json" ]] || die "'$QMODEL' exists and is not a GPTQ checkpoint; not replacing it"
    echo "== $MODEL changed since $QMODEL was written: quantizing again"
    rm -rf -- "$QMODEL"
  fi
  mkdir -p "$(dirname "$QMODEL")"
  echo "== quantizing $MODEL -> $QMODEL"
  # shellcheck disable=SC2086  # QUANTIZE_FLAGS is a list of flags
  "$BIN/gptq-quantize" "$MODEL" "$QMODEL" --backend auto --calib-samples 32 --calib-seq-len 256 ${QUANTIZE_FLAGS:-}
else
  echo "== $QMODEL is newer than $MODEL: not quantizing again (delete it to force)"
fi

echo
echo "== generating from $QMODEL"
printf '%s' "$PROMPT"
# shellcheck disable=SC2086
"$BIN/gptq-chat" -m "$QMODEL" --backend auto -p "$PROMPT" -n 100 ${CHAT_FLAGS:-}
