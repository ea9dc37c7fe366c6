"""Settings of ``nlptool similarity`` that both the command object (:mod:`.command`) and the library
(:mod:`.api`) read, in a module that imports nothing (so ``nlptool --help`` stays light and the
two do not import each other)."""

#: Weight of the character Jaccard in the pair score ``similarity`` (``--char-weight``): chosen on
#: half of a question-pair dev set built from CMRC questions (``python
#: benchmarks/bench_question_pairs.py``): with zh-sim-mini, question AUC 0.784 on the other half
#: against 0.775 for the cosine alone and 0.755 for character Jaccard alone; Chinese STS-B valid
#: Spearman 0.763 against 0.745 (cosine) and 0.729 (1 - WRD, the score before).
CHAR_WEIGHT = 0.2
