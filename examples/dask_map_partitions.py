"""nlptool on Dask: a worker inside Bag.map_partitions (docs/scale-out.md).

    python examples/dask_map_partitions.py corpus.jsonl out/

corpus.jsonl: JSON lines, each an object with a "text" field (other fields pass through).
out/: numbered files of JSON lines; concatenated in name order they are, byte for byte, the lines
`nlptool segment corpus.jsonl` writes (except that a failed row has the worker's "error" message,
without the CLI's "line N of FILE:" prefix and "line" field).
"""

import json
import sys

import dask.bag as db
import pandas as pd

from nlptool.jsonl import safe_json_line
from nlptool.workers import Segmenter


def process(lines, worker):
    """One partition: JSON lines in, output JSON lines out. The worker arrives pickled without
    its model; the model loads on the first partition, once per worker process."""
    rows = pd.DataFrame([json.loads(line) for line in lines])
    frame = worker(rows)
    added = [c for c in frame.columns if c not in rows.columns]  # the results and "error"
    # the CLI's JSON line: the row's fields, then its results; an empty (None) result or error left out
    return [safe_json_line({k: v for k, v in row.items() if v is not None or k not in added})
            for row in frame.to_dict("records")]


def run(inp, out, worker, workers=2, blocksize="4MiB"):
    """Process the JSON lines `inp` (a path or glob) with `worker` in `workers` local processes,
    `blocksize` of input per partition, and write out/00000.jsonl, out/00001.jsonl, ..."""
    bag = db.read_text(inp, blocksize=blocksize).map_partitions(process, worker)
    bag.to_textfiles(f"{out}/*.jsonl", name_function="{:05d}".format, last_endline=True,
                     scheduler="processes", num_workers=workers)


if __name__ == "__main__":  # required: Dask's worker processes import this file
    run(sys.argv[1], sys.argv[2], Segmenter())  # = nlptool segment
