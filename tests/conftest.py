"""Session fixtures: the real parts every test talks to.

They live in streaming_agents.testing so users can load them in their own
suites with ``pytest_plugins = ["streaming_agents.testing.fixtures"]``.
"""

pytest_plugins = ["streaming_agents.testing.fixtures"]
