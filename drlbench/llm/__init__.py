"""The LLM track: preference optimisation on tasks with exact ground truth (specs/llm_track.md).

- `losses`: every method's loss as a pure function of per-token log-probs and masks (`PairBatch`).
"""
