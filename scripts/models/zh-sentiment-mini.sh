#!/bin/sh
# Stage script of the built-in zh-sentiment-mini (negative/positive review classifier).
# Run from the repository root. Reads: NLPTOOL PY BASE BUILD SHARED DEST DEVICE QUICK
# (see scripts/build_models.sh), plus optional overrides EPOCHS BATCH LR CAP MAX_MINUTES for
# CPU builds (MAXLEN tokens per review, MAX_STEPS to fit the schedule to a CPU budget). Writes data and the trained model under $BUILD, the exported model to $DEST.
#
# GPU (H100/H200): ~400 steps/epoch at batch 128, 3 epochs, bf16: about 60-90 s of training.
# CPU smoke test:  QUICK=1 DEST=build/test-dest NLPTOOL=".venv/bin/python -m nlptool" PY=.venv/bin/python sh scripts/models/zh-sentiment-mini.sh
set -eu
NAME=zh-sentiment-mini
. scripts/models/_env.sh  # NLPTOOL PY BASE BUILD SHARED DEST DEVICE QUICK
EPOCHS=${EPOCHS:-3}
BATCH=${BATCH:-128}
LR=${LR:-2e-4}
CAP=${CAP:-4000}
MAX_MINUTES=${MAX_MINUTES:-4}
MAXLEN=${MAXLEN:-128}

DATA="$BUILD/$NAME-data"
OUT="$BUILD/$NAME"
CMDS="$BUILD/$NAME.commands.txt"
LIMIT=""
STEPS=${MAX_STEPS:+--max-steps $MAX_STEPS}
if [ "$QUICK" = "1" ]; then
  LIMIT="--limit 6"
  STEPS="--max-steps 3"
  BATCH=8
fi
mkdir -p "$BUILD"
rm -rf "$OUT"

PREP="$PY scripts/prepare_sentiment_data.py --shared $SHARED --out $DATA --test 0.10 --dev 0.05 --cap $CAP --seed 13 $LIMIT"
TRAIN="$NLPTOOL train classifier $DATA/train.csv --eval $DATA/dev.csv --out $OUT --model $BASE --epochs $EPOCHS $STEPS --batch-size $BATCH --learning-rate $LR --max-length $MAXLEN --max-minutes $MAX_MINUTES --seed 0 --device $DEVICE --report $BUILD/$NAME.train.json"
FINISH="$PY -c \"from nlptool.attribute.classifier import finish_builtin; finish_builtin('$NAME', trained='$OUT', data_dir='$DATA', dest='$DEST', base='$BASE', train_report='$BUILD/$NAME.train.json', commands='$CMDS', device='$DEVICE', quick=$( [ "$QUICK" = 1 ] && echo True || echo False ))\""
printf '%s\n' "$PREP" "$TRAIN" "$FINISH" > "$CMDS"

echo "[$NAME] data" >&2
$PREP
echo "[$NAME] train" >&2
$TRAIN
echo "[$NAME] evaluate on the held-out test split and export to $DEST/$NAME" >&2
eval "$FINISH"
"$PY" -c "import json; r = json.load(open('$BUILD/$NAME.report.json')); print('[$NAME] test accuracy %.4f (majority %.4f), dev %.4f' % (r['test']['overall']['accuracy'], r['test']['overall']['majority'], r['dev']['overall']['accuracy']))" >&2
