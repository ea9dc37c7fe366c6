"""nlptool on Spark: a worker inside DataFrame.mapInPandas (docs/scale-out.md).

    python examples/spark_map_in_pandas.py corpus.jsonl out/

corpus.jsonl: JSON lines with an "id" and a "text" field. out/: Spark's part files of JSON lines,
each row with its "words" added (or an "error"); read in name order, they are in input order.
Needs pyspark and Java (17 or newer for pyspark 4).
"""

import os
import sys

from nlptool.workers import Segmenter, spark_udf


def run(spark, inp, out, worker, in_schema, out_schema):
    """Read the JSON lines `inp` (columns `in_schema`), run `worker` on every partition and write
    JSON lines into the directory `out`. `out_schema`: `in_schema`, the worker's result columns
    and `error string`."""
    df = spark.read.schema(in_schema).json(inp)
    # spark_udf(worker): one partition's iterator of pandas DataFrames -> the processed frames.
    # The worker is pickled into it without its model; the model loads on the first frame, once
    # per Python worker process (Spark reuses those across partitions).
    df.mapInPandas(spark_udf(worker), schema=out_schema).write.mode("overwrite").json(out)


if __name__ == "__main__":
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # local mode: the executors run this Python
    spark = SparkSession.builder.master("local[2]").appName("nlptool-segment").getOrCreate()
    run(spark, sys.argv[1], sys.argv[2], Segmenter(),  # = nlptool segment
        in_schema="id long, text string",
        out_schema="id long, text string, words array<string>, error string")
    spark.stop()
