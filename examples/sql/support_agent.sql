-- A support agent on Kafka, exactly-once: one conversation (memory) per customer.
--
--   streaming-agents sql examples/sql/support_agent.sql \
--     --var bootstrap=localhost:9092 --var tickets_topic=tickets --var replies_topic=replies
--
-- Variables: ${name} or ${name:-default}; also read from the environment.
-- The model defaults to OpenAI (OPENAI_API_KEY); point it anywhere litellm
-- reaches with --var model=... --var api_base=... --var api_key_env=...

-- Tickets as JSON: {"ticket_id": "...", "customer": "...", "text": "...", "priority": "..."}.
-- read_committed: never read records of aborted or open upstream transactions.
CREATE TABLE tickets (
  ticket_id STRING,
  customer  STRING,
  text      STRING,
  priority  STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '${tickets_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = 'support-agent',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = '${bounded:-unbounded}',
  'format' = 'json'
);

-- Replies are written in Kafka transactions committed with each checkpoint.
CREATE TABLE replies (
  ticket_id STRING,
  customer  STRING,
  status    STRING,
  reply     STRING,
  turn      INT,
  error     STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '${replies_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.transaction.timeout.ms' = '600000',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '${txn_prefix:-support-agent}',
  'format' = 'json'
);

CREATE MODEL support_model
  OUTPUT (reply STRING)
  WITH (
    'provider' = 'openai',
    'model' = '${model:-gpt-4o-mini}',
    'api_base' = '${api_base:-}',
    'api_key_env' = '${api_key_env:-OPENAI_API_KEY}',
    'temperature' = '0'
  );

-- support_tools.py sits next to this script.
CREATE TOOL order_status
  USING FUNCTION 'support_tools.order_status'
  WITH ('description' = 'Look up the shipping status of an order by its id');

CREATE AGENT support
  USING MODEL support_model
  USING PROMPT 'You are a concise, friendly support agent. Use order_status for questions about orders.'
  USING TOOLS order_status
  WITH (
    'max_iterations' = '3',  -- tool rounds per ticket
    'max_turns' = '10',      -- turns of each customer's conversation kept in memory
    'memory_ttl' = '7 d'     -- forget customers idle for a week
  );

-- As on Confluent Cloud the third argument is the request id (one per ticket).
-- The options MAP asks for memory: 'memory_key' = t.customer makes every
-- ticket of a customer continue that customer's conversation (without it each
-- ticket is its own conversation).  The WHERE filter runs before the agent
-- (spam never reaches the LLM).
INSERT INTO replies
SELECT t.ticket_id, t.customer, r.status, r.response, r.turn, r.error
FROM tickets AS t,
  LATERAL TABLE(AI_RUN_AGENT('support', CONCAT('[', t.priority, '] ', t.text), t.ticket_id,
                             MAP['memory_key', t.customer]))
    AS r(status, response, turn, error)
WHERE t.priority <> 'spam';
