"""Entry script for PythonDriver (``-py``): build a job of the registry in the cluster's context.

The Flink Kubernetes Operator starts PyFlink jobs with
``org.apache.flink.client.python.PythonDriver -py <script> <args>``; the image copies this
file to ``/opt/streaming-agents/deploy/run_job.py``.  The arguments are those of
``python -m streaming_agents.cli.jobs_cmd`` (``--job-dir``, ``--bootstrap``, ``--model``,
``--topic ROLE=NAME``...), the program ``streaming-agents submit`` hands to ``flink run``.
"""

import sys

from streaming_agents.cli.jobs_cmd import entry_main

if __name__ == "__main__":
    sys.exit(entry_main())
