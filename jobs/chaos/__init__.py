"""The chaos job (``job.py``), submitted by ``streaming_agents.chaos`` with ``flink run -py``."""
