"""Entry points that are not DVC stages: the deco-bench CLI, the regression gate, run comparison, ours vs the
official code, the train-step kernel breakdown and the pytest-benchmark baseline check."""
