#!/bin/sh
# Build the built-in question-answer generator zh-qa-gen-mini (docs/qa-gen.md).
# Run from the repository root. POSIX sh. Env: NLPTOOL (default nlptool), PY (python), BASE (the
# masked LM to start from), BUILD (work dir), SHARED (data), DEST (models dir), DEVICE, QUICK=1 (a
# few steps on a few questions: tests the script, the model is useless).
#
# Data: ../shared/data/qa (CMRC 2018 trial + dev part, 3,586 questions) split by article,
# deterministically (nlptool.qagen.write_splits, seed 0): test = 10 % of the articles (94, 366
# questions: never trained on, the numbers in the model card), dev = 10 % of the rest (settings
# were chosen there), train_dev = all but test (what this script trains on).
# Beam length penalty 2.0: chosen on dev by generated against gold question length (docs/qa-gen.md).
# GPU (H100/H200): 40 epochs of ~5,700 examples at batch 128 = ~1,800 steps, about 60-90 s.
set -eu
. scripts/models/_env.sh  # NLPTOOL PY BASE BUILD SHARED DEST DEVICE QUICK
# TRAIN_OPTS overrides the length/batch flags (the interim CPU build used a shorter run, see the card)
NAME=zh-qa-gen-mini
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
    TRAIN_OPTS=${TRAIN_OPTS:-"--epochs 40 --batch-size 128"}
fi
CMD_TRAIN="$NLPTOOL train qa-gen $TRAIN --out $OUTDIR --model $BASE --holdout 0 $TRAIN_OPTS --learning-rate 5e-4 --label-smoothing 0.1 --mark-answer --no-repeat-ngram 3 --length-penalty 2.0 --seed 0 --device $DEVICE --quiet"
CMD_EVAL="$NLPTOOL eval qa-gen $TEST --model $OUTDIR --output $OUTDIR/evaluation.json --device $DEVICE --quiet"
rm -rf "$OUTDIR"
start=$(date +%s)
$CMD_TRAIN
end=$(date +%s)
echo "$NAME: trained in $((end - start)) s" >&2
$CMD_EVAL
printf '%s\n' "# data splits (build/qa-data)" \
  "$PY -c \"from nlptool.qagen import write_splits; write_splits(['$SHARED/qa/cmrc2018_trial.json', '$SHARED/qa/cmrc2018_dev_part.json'], '$DATA')\"" \
  "$CMD_TRAIN" "$CMD_EVAL" "# or the whole stage: sh scripts/models/$NAME.sh" > "$OUTDIR/commands.txt"
$PY -c "
from nlptool.qagen import export_model
cmds = open('$OUTDIR/commands.txt', encoding='utf-8').read().splitlines()
size = export_model('$OUTDIR', '$DEST/$NAME', name='$NAME', evaluation='$OUTDIR/evaluation.json', commands=cmds)
print('$NAME: exported to $DEST/$NAME, %.1f MB' % (size / 1e6))
"
