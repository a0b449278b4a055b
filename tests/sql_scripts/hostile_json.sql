-- The hostile corpus through a SQL script: a Kafka table declared 'format' = 'json' (the runner
-- reads it as bytes with coordinates and decodes it safely), an agent, an exactly-once sink.
-- Records that cannot become rows of `events` go to ${events_topic}.dead-letters.
CREATE TABLE events (
  k      STRING NOT NULL,
  seq    BIGINT,
  `offset` BIGINT METADATA VIRTUAL,
  src    STRING METADATA FROM 'topic' VIRTUAL,
  ts     TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${events_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = 'hostile-sql',
  'properties.isolation.level' = 'read_committed',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'format' = 'json'
);

CREATE TABLE outs (
  k       STRING,
  seq     BIGINT,
  status  STRING,
  reply   STRING,
  source  ROW<topic STRING, `offset` BIGINT>
) WITH (
  'connector' = 'kafka',
  'topic' = '${outs_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.transaction.timeout.ms' = '600000',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '${txn_prefix}',
  'format' = 'json'
);

CREATE MODEL echo_model OUTPUT (reply STRING)
  WITH ('provider' = 'openai', 'model' = 'fake-model', 'api_base' = '${api_base}',
        'api_key_env' = '${api_key_env:-FAKE_LLM_API_KEY}');

CREATE AGENT echo USING MODEL echo_model USING PROMPT 'Echo.';

INSERT INTO outs
SELECT e.k, e.seq, r.status, r.response, ROW(e.src, e.`offset`)
FROM events AS e,
  LATERAL TABLE(AI_RUN_AGENT('echo', e.k, CAST(e.`offset` AS STRING))) AS r(status, response);
