"""Entry points that are not DVC stages: the deco-bench CLI, the regression gate, run comparison, ours-vs-official, the kernel breakdown."""
