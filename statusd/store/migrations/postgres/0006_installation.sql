-- One random id per database, made once: mixed into e-mail Message-IDs so that two installations,
-- or one after a database reset or a move from SQLite, never send two different mails under one id.
CREATE TABLE installation (
    id text PRIMARY KEY NOT NULL
);
INSERT INTO installation (id) VALUES (md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text));
