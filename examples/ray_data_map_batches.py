"""nlptool on Ray Data: a worker class on an actor pool with map_batches (docs/scale-out.md).

    python examples/ray_data_map_batches.py corpus.jsonl out/

corpus.jsonl: JSON lines with a "text" field (other fields pass through; Arrow reads them, so a
field must have one type in the whole file). out/: Ray's JSON-lines files (written by pandas:
"error": null on good rows, floats to 10 decimals; the order across files is Ray's). Connects to
the cluster in RAY_ADDRESS or starts a local Ray. From a shell, `nlptool segment --engine ray`
does the same and writes the CLI's bytes in input order.
"""

import os
import sys

import ray

from nlptool.ray_engine import init
from nlptool.workers import Segmenter


def run(inp, out, worker_class, options, workers=2, gpus=0):
    """Process the JSON lines `inp` with `worker_class(**options)` on `workers` actors, each
    holding one model (`gpus`: Ray's num_gpus per actor, 0.5 puts two on one GPU), and write
    JSON lines into the directory `out`."""
    # RAY_ADDRESS's cluster, or a local Ray with a CPU beyond the actors' (else they hold every
    # CPU and Ray Data's read tasks never run)
    init(num_cpus=max(os.cpu_count() or 1, workers + 1))
    ds = ray.data.read_json(inp)
    ds = ds.map_batches(worker_class, fn_constructor_kwargs=options, batch_size=256, concurrency=workers,
                        num_gpus=gpus, batch_format="pandas")
    ds.write_json(out, force_ascii=False)


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2], Segmenter, {})  # = nlptool segment
