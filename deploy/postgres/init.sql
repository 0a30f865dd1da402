-- Runs once, on an empty data directory (the postgres image's /docker-entrypoint-initdb.d).
-- One database per component; Prefect's server needs pg_trgm in its own.
CREATE DATABASE mlflow;
CREATE DATABASE prefect;
CREATE DATABASE predictions;
\connect prefect
CREATE EXTENSION IF NOT EXISTS pg_trgm;
