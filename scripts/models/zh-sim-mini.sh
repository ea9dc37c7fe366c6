#!/bin/sh
# Build the built-in similarity encoder zh-sim-mini from $BASE: unsupervised SimCSE (Gao et al. 2021)
# on the sentences of Chinese STS-B train (labels unused), then CoSENT (Su 2022) on its 5,231 labelled
# pairs (the settings were chosen on a 90/10 split of train: benchmarks/tune_similarity.py),
# evaluated on STS-B valid (never trained on, never used to choose anything), exported in fp16
# with a generated model card. Run from the repository root; see docs/similarity.md.
#
# Env: NLPTOOL (default nlptool), PY (python), BASE (base MLM dir), BUILD (work dir), SHARED (data),
#      DEST (where the model goes), DEVICE (auto), QUICK (1 = a few steps, to test on the CPU),
#      EPOCHS (CoSENT epochs, default 8), IDF (the base model's IDF table, copied to DEST/NAME/idf.tsv).
# On an H100/H200 the two training stages take about 50 s.
set -eu
. scripts/models/_env.sh  # NLPTOOL PY BASE BUILD SHARED DEST DEVICE QUICK
NAME=zh-sim-mini

TRAIN_SRC=$SHARED/sts/STS-B.train.data
VALID_SRC=$SHARED/sts/STS-B.valid.data
for f in "$TRAIN_SRC" "$VALID_SRC"; do
    [ -f "$f" ] || { echo "$NAME: $f is missing (Chinese STS-B; see ../shared/data/README.md)" >&2; exit 1; }
done

WORK=$BUILD/$NAME-data
mkdir -p "$WORK"
cp "$TRAIN_SRC" "$WORK/train.tsv"
cp "$VALID_SRC" "$WORK/valid.tsv"

# settings chosen on a 90/10 split of STS-B train (docs/similarity.md, "How the settings were chosen")
EPOCHS=${EPOCHS:-8}
BATCH=64
LR=2e-4
if [ "$QUICK" = 1 ]; then
    LIMIT="--max-steps 3"
    SIMCSE_LIMIT="--max-steps 2"
    head -n 200 "$WORK/valid.tsv" > "$WORK/valid.quick.tsv"
    VALID=$WORK/valid.quick.tsv
else
    LIMIT="--epochs $EPOCHS"
    SIMCSE_LIMIT="--epochs 1"
    VALID=$WORK/valid.tsv
fi

# stage 1: SimCSE on the raw sentences of STS-B train (a pair file gives both sentences, scores unused)
CMD_SIMCSE="$NLPTOOL train similarity $WORK/train.tsv --method simcse --model $BASE --out $BUILD/$NAME-simcse $SIMCSE_LIMIT --batch-size $BATCH --learning-rate 5e-5 --max-length 64 --pooling mean --temperature 0.05 --seed 0 --device $DEVICE --report $WORK/simcse.json"
# stage 2: CoSENT on the labelled pairs
CMD_TRAIN="$NLPTOOL train similarity $WORK/train.tsv --method cosent --model $BUILD/$NAME-simcse --out $BUILD/$NAME --holdout 0 --eval $VALID $LIMIT --batch-size $BATCH --learning-rate $LR --max-length 64 --pooling mean --scale 20 --seed 0 --device $DEVICE --report $WORK/cosent.json"
start=$(date +%s)
echo "+ $CMD_SIMCSE" >&2
$CMD_SIMCSE
echo "+ $CMD_TRAIN" >&2
$CMD_TRAIN
end=$(date +%s)
echo "$NAME: training took $((end - start)) s" >&2

mkdir -p "$DEST/$NAME"
# the base model's IDF table (same tokenizer) travels with the model as idf.tsv
IDF=${IDF:-nlptool/data/similarity/zh-bert-mini.idf.tsv}
cp "$IDF" "$DEST/$NAME/idf.tsv"
$PY -c "
import sys
from nlptool.similarity.train import export_similarity_model
m = export_similarity_model(sys.argv[1], sys.argv[2], name='$NAME', stage_metrics=[sys.argv[6], sys.argv[3]], eval_file=sys.argv[4],
    eval_name='Chinese STS-B valid' + (' (first 200 lines, QUICK smoke run)' if '$QUICK' == '1' else ''),
    data={'training': 'Chinese STS-B train (CNSD translation of STS Benchmark), all 5,231 pairs, scores 0-5; SimCSE on its distinct sentences',
          'settings chosen on': 'a seeded 90/10 split of STS-B train (4,708 / 523 pairs); never on STS-B valid',
          'evaluation': 'Chinese STS-B valid, 1,458 pairs, never trained on'},
    commands=['BASE=$BASE DEST=$DEST EPOCHS=$EPOCHS sh scripts/models/$NAME.sh', sys.argv[7], sys.argv[5]], base='$BASE', device='cpu')
print('$NAME:', {k: round(v, 4) for k, v in m['eval']['spearman'].items()}, file=sys.stderr)
" "$BUILD/$NAME" "$DEST/$NAME" "$WORK/cosent.json" "$VALID" "$CMD_TRAIN" "$WORK/simcse.json" "$CMD_SIMCSE"
echo "$NAME: exported to $DEST/$NAME" >&2
