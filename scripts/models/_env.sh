# Shared defaults of the stage scripts (sourced from the repository root; see scripts/build_models.sh).
NLPTOOL=${NLPTOOL:-nlptool}
PY=${PY:-python}
BASE=${BASE:-nlptool/data/models/zh-bert-mini}
BUILD=${BUILD:-build/models}
SHARED=${SHARED:-${NLPTOOL_SHARED_DATA:-../shared/data}}
DEST=${DEST:-nlptool/data/models}
DEVICE=${DEVICE:-auto}
QUICK=${QUICK:-0}
