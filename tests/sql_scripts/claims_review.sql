-- Claims review in Confluent Cloud's Streaming Agents shapes (written from Confluent's
-- public CREATE CONNECTION / MODEL / TOOL / AGENT and AI_RUN_AGENT documentation), with
-- only the edits docs/sql.md lists for this runner:
--   * tables name their connector (Confluent backs every table with a topic itself);
--   * secrets by reference: 'api_key_env' names an environment variable ('api-key' is refused);
--   * CREATE FUNCTION ... LANGUAGE PYTHON instead of USING JAR;
--   * the MCP connection names its token's variable ('token_env'), not the token.

SET 'sql.state-ttl' = '1 h';

CREATE TABLE claims (
  claim_id   STRING,
  applicant  STRING,
  narrative  STRING,
  amount     DECIMAL(10, 2),
  filed_at   TIMESTAMP_LTZ(3),
  details    ROW<city STRING, tags ARRAY<STRING>>,
  attrs      MAP<STRING, STRING>
) WITH (
  'connector' = 'kafka',
  'topic' = '${claims_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = 'claims-review',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'format' = 'json'
);

CREATE CONNECTION llm_connection
WITH (
  'type' = 'openai',
  'endpoint' = '${llm_endpoint}/chat/completions',
  'api_key_env' = 'FAKE_LLM_API_KEY'
);

CREATE MODEL review_model
INPUT (prompt STRING)
OUTPUT (response STRING)
WITH (
  'provider' = 'openai',
  'task' = 'text_generation',
  'openai.connection' = 'llm_connection',
  'openai.model_version' = 'gpt-4o-mini',
  'openai.max_completion_tokens' = '256'
);

CREATE MODEL claim_embedding
INPUT (text STRING)
OUTPUT (embedding ARRAY<FLOAT>)
WITH (
  'provider' = 'openai',
  'task' = 'embedding',
  'openai.connection' = 'llm_connection',
  'openai.model_version' = 'text-embedding-3-small'
);

CREATE FUNCTION policy_lookup AS 'claims_tools.policy_lookup' LANGUAGE PYTHON;

CREATE TOOL policy_tool
USING FUNCTION policy_lookup
WITH (
  'type' = 'function',
  'description' = 'Look up the insurance policy of a claim by its policy id'
);

-- An MCP server's tools (Confluent: 'type' = 'mcp_server' connection + USING CONNECTION).
CREATE CONNECTION `ticket-mcp-connection`
WITH (
  'type' = 'mcp_server',
  'endpoint' = '${mcp_endpoint}',
  'transport-type' = 'STREAMABLE_HTTP',
  'token_env' = 'TICKET_MCP_TOKEN'
);

CREATE TOOL ticket_service
USING CONNECTION `ticket-mcp-connection`
WITH (
  'type' = 'mcp',
  'allowed_tools' = 'open_ticket',
  'request_timeout' = '30'
);

-- A model whose MCP tools AI_TOOL_INVOKE may call.
CREATE MODEL ticket_model
WITH (
  'provider' = 'openai',
  'openai.connection' = 'llm_connection',
  'openai.model_version' = 'gpt-4o-mini',
  'mcp.connection' = 'ticket-mcp-connection'
);

CREATE AGENT `claims_review_agent`
USING MODEL `review_model`
USING PROMPT 'You review insurance claims. Call policy_tool when a claim names a policy.'
USING TOOLS policy_tool, ticket_service
COMMENT 'Reviews every claim as it arrives'
WITH (
  'max_iterations' = '5',
  'max_consecutive_failures' = '2'
);

-- The agent runs continuously into a table made by the query (CTAS); the third
-- argument is Confluent's options MAP, so every claim is its own conversation.
CREATE TABLE claims_reviewed WITH (
  'connector' = 'kafka',
  'topic' = '${reviewed_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'format' = 'json'
) AS
SELECT claim_id, applicant, amount, filed_at, details, attrs, status, response
FROM claims,
LATERAL TABLE(AI_RUN_AGENT(
  `claims_review_agent`,
  CONCAT('Claim ', claim_id, ' by ', applicant, ': ', narrative),
  MAP['debug', true]
));

CREATE TABLE claim_vectors (
  claim_id STRING,
  embedding ARRAY<FLOAT>,
  summary_embedding ARRAY<FLOAT>,
  policy MAP<STRING, MAP<STRING, STRING>>
) WITH (
  'connector' = 'kafka',
  'topic' = '${vectors_topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'format' = 'json'
);

INSERT INTO claim_vectors
SELECT claim_id, embedding, AI_EMBEDDING('claim_embedding', CONCAT('summary: ', narrative)),
  AI_TOOL_INVOKE(
    'ticket_model',
    CONCAT('policy check for ', claim_id),
    MAP[],
    MAP['lookup_policy', 'Look up an insurance policy by its id'],
    MAP['debug', 'true']
  )
FROM claims,
LATERAL TABLE(ML_PREDICT('claim_embedding', narrative));
