"""Test infrastructure users can import too: a fake OpenAI-compatible LLM,
a local single-node Kafka broker, and a standalone Flink cluster launcher."""
