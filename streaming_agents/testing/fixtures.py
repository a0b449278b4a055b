"""pytest plugin: session fixtures for the fake LLM, Kafka and the Flink cluster.

Each part lives in its own module; this plugin only gathers them.
"""

from streaming_agents.testing.cluster_fixtures import *  # noqa: F403
from streaming_agents.testing.fake_llm_fixtures import *  # noqa: F403
from streaming_agents.testing.kafka_fixtures import *  # noqa: F403
