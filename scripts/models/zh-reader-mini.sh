#!/bin/sh
# Build the built-in extractive reader zh-reader-mini (qa-gen's round trip; docs/qa-gen.md).
# Run from the repository root. POSIX sh. Env: NLPTOOL (default nlptool), PY (python), BASE (the
# encoder to start from), BUILD (work dir), SHARED (data), DEST (models dir), DEVICE, QUICK=1 (a
# few steps on a few questions: tests the script).
#
# The same article-level splits as zh-qa-gen-mini (nlptool.qagen.write_splits, seed 0): trained on
# train_dev, measured on test (94 held-out articles, 366 questions; reported only, never used
# for choosing). GPU (H100/H200): 15 epochs of ~3,200 examples at batch 64 = ~750 steps, about 30 s.
set -eu
. scripts/models/_env.sh  # NLPTOOL PY BASE BUILD SHARED DEST DEVICE QUICK
# TRAIN_OPTS overrides the length/batch flags (the interim CPU build used a shorter run, see the card)
NAME=zh-reader-mini
DATA=$BUILD/qa-data
OUTDIR=$BUILD/$NAME

mkdir -p "$DATA"
$PY -c "from nlptool.qagen import write_splits; write_splits(['$SHARED/qa/cmrc2018_trial.json', '$SHARED/qa/cmrc2018_dev_part.json'], '$DATA')"
TRAIN=$DATA/train_dev.jsonl
TEST=$DATA/test.jsonl
if [ "$QUICK" = 1 ]; then
    head -n 64 "$DATA/train_dev.jsonl" > "$DATA/quick_train.jsonl"
    head -n 16 "$DATA/test.jsonl" > "$DATA/quick_test.jsonl"
    TRAIN=$DATA/quick_train.jsonl
    TEST=$DATA/quick_test.jsonl
    TRAIN_OPTS=${TRAIN_OPTS:-"--max-steps 3 --batch-size 16"}
else
    TRAIN_OPTS=${TRAIN_OPTS:-"--epochs 15 --batch-size 64"}
fi
CMD_TRAIN="$NLPTOOL train reader $TRAIN --eval $TEST --out $OUTDIR --model $BASE $TRAIN_OPTS --learning-rate 3e-4 --seed 0 --device $DEVICE --quiet"
rm -rf "$OUTDIR"
start=$(date +%s)
$CMD_TRAIN
end=$(date +%s)
echo "$NAME: trained in $((end - start)) s" >&2
printf '%s\n' "# data splits (build/qa-data)" \
  "$PY -c \"from nlptool.qagen import write_splits; write_splits(['$SHARED/qa/cmrc2018_trial.json', '$SHARED/qa/cmrc2018_dev_part.json'], '$DATA')\"" \
  "$CMD_TRAIN" "# or the whole stage: sh scripts/models/$NAME.sh" > "$OUTDIR/commands.txt"
$PY -c "
import json
from nlptool.qagen import export_model
cmds = open('$OUTDIR/commands.txt', encoding='utf-8').read().splitlines()
m = json.load(open('$OUTDIR/metrics.json', encoding='utf-8'))
json.dump(m['heldout'], open('$OUTDIR/evaluation.json', 'w'))
size = export_model('$OUTDIR', '$DEST/$NAME', name='$NAME', kind='question-answering', evaluation='$OUTDIR/evaluation.json', commands=cmds)
print('$NAME: exported to $DEST/$NAME, %.1f MB' % (size / 1e6))
"
