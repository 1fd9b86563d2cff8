"""The conversation: flows (data), the pure engine, its actions, and the pipeline."""
