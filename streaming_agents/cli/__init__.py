"""The ``streaming-agents`` command line: see :mod:`streaming_agents.cli.main`.

Importing it is cheap: PyFlink, the Kafka clients and litellm are imported by
the subcommands that need them.  (``main`` is not re-exported here, so that
``python -m streaming_agents.cli.main`` does not import the module twice.)
"""
