-- Stateless LLM calls in SQL: classify every ticket (typed output) and draft a
-- one-line summary, exactly-once from Kafka to Kafka.
--
--   streaming-agents sql examples/sql/ticket_triage.sql \
--     --var bootstrap=localhost:9092 --var tickets_topic=tickets --var triage_topic=triaged

CREATE TABLE tickets (
  ticket_id STRING,
  customer  STRING,
  text      STRING,
  priority  STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '${tickets_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = 'ticket-triage',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = '${bounded:-unbounded}',
  'format' = 'json'
);

CREATE TABLE triaged (
  ticket_id STRING,
  category  STRING,
  urgency   INT,
  tags      ARRAY<STRING>,
  summary   STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '${triage_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.transaction.timeout.ms' = '600000',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '${txn_prefix:-ticket-triage}',
  'format' = 'json'
);

-- OUTPUT with typed columns: the model is asked for JSON of that shape (the
-- COMMENTs describe the fields to it) and the reply is validated.
CREATE MODEL triage_model
  INPUT (text STRING)
  OUTPUT (
    category STRING NOT NULL COMMENT 'one of: billing, shipping, account, other',
    urgency  INT NOT NULL COMMENT '1 (can wait) to 5 (customer is blocked)',
    tags     ARRAY<STRING> COMMENT 'up to three keywords'
  )
  WITH (
    'provider' = 'openai',
    'model' = '${model:-gpt-4o-mini}',
    'api_base' = '${api_base:-}',
    'api_key_env' = '${api_key_env:-OPENAI_API_KEY}',
    'system_prompt' = 'Classify the customer support ticket.'
  );

-- A single STRING output column: the model's text.
CREATE MODEL summary_model
  OUTPUT (summary STRING)
  WITH (
    'provider' = 'openai',
    'model' = '${model:-gpt-4o-mini}',
    'api_base' = '${api_base:-}',
    'api_key_env' = '${api_key_env:-OPENAI_API_KEY}',
    'system_prompt' = 'Summarise the ticket in at most ten words.'
  );

-- ML_PREDICT (Confluent's name; AI_COMPLETE works too) as a lateral table
-- returns the OUTPUT columns; AI_COMPLETE as a scalar returns the text.
INSERT INTO triaged
SELECT t.ticket_id, p.category, p.urgency, p.tags, AI_COMPLETE('summary_model', t.text)
FROM tickets AS t,
  LATERAL TABLE(ML_PREDICT('triage_model', t.text)) AS p
WHERE t.priority <> 'spam';
