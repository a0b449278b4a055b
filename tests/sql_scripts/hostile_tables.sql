-- The hostile corpus through one SQL job reading one topic as three Kafka tables, each read as
-- bytes with coordinates and decoded safely by the runner (docs/sql.md, Kafka tables):
--   events: 'format' = 'json' (the value), through an agent;
--   keyed:  'key.format' = 'json' + 'value.format' = 'json' (key column k_id from the record key;
--           a nested STRING in meta.tag);
--   hostile.lines: 'format' = 'raw' with a STRING column (strict UTF-8, never repaired), a
--           qualified name (a database that need not exist: the runner's view is temporary).
-- Records a table cannot use go to its own dead-letter topic.
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

CREATE TABLE keyed (
  k_id   STRING NOT NULL,
  k      STRING NOT NULL,
  seq    BIGINT,
  meta   ROW<tag STRING>,
  `offset` BIGINT METADATA VIRTUAL,
  src    STRING METADATA FROM 'topic' VIRTUAL
) WITH (
  'connector' = 'kafka',
  'topic' = '${events_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = 'hostile-sql-keyed',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'key.format' = 'json',
  'key.fields' = 'k_id',
  'key.fields-prefix' = 'k_',
  'value.format' = 'json',
  'value.fields-include' = 'EXCEPT_KEY',
  'dead-letter.topic' = '${events_topic}.keyed-dead-letters'
);

CREATE TABLE hostile.lines (
  line   STRING NOT NULL,
  `offset` BIGINT METADATA VIRTUAL,
  src    STRING METADATA FROM 'topic' VIRTUAL
) WITH (
  'connector' = 'kafka',
  'topic' = '${events_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = 'hostile-sql-lines',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'format' = 'raw',
  'dead-letter.topic' = '${events_topic}.lines-dead-letters'
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

CREATE TABLE keyed_outs (
  id      STRING,
  k       STRING,
  seq     BIGINT,
  source  ROW<topic STRING, `offset` BIGINT>
) WITH (
  'connector' = 'kafka',
  'topic' = '${outs_topic}-keyed',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.transaction.timeout.ms' = '600000',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '${txn_prefix}-keyed',
  'format' = 'json'
);

CREATE TABLE lines_outs (
  sha     STRING,
  source  ROW<topic STRING, `offset` BIGINT>
) WITH (
  'connector' = 'kafka',
  'topic' = '${outs_topic}-lines',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.transaction.timeout.ms' = '600000',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '${txn_prefix}-lines',
  'format' = 'json'
);

CREATE MODEL echo_model OUTPUT (reply STRING)
  WITH ('provider' = 'openai', 'model' = 'fake-model', 'api_base' = '${api_base}',
        'api_key_env' = '${api_key_env:-FAKE_LLM_API_KEY}');

CREATE AGENT echo USING MODEL echo_model USING PROMPT 'Echo.';

EXECUTE STATEMENT SET BEGIN
INSERT INTO outs
SELECT e.k, e.seq, r.status, r.response, ROW(e.src, e.`offset`)
FROM events AS e,
  LATERAL TABLE(AI_RUN_AGENT('echo', e.k, CAST(e.`offset` AS STRING))) AS r(status, response);
INSERT INTO keyed_outs SELECT k_id, k, seq, ROW(src, `offset`) FROM keyed;
INSERT INTO lines_outs SELECT SHA256(line), ROW(src, `offset`) FROM hostile.lines;
END;
