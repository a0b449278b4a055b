"""PyFlink jobs used by the tests; each runs in-process (``build``) or via ``flink run -py``."""
