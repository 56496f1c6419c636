-- One random id per database, made once: mixed into e-mail Message-IDs so that two installations,
-- or one after a database reset or a move to PostgreSQL, never send two different mails under one id.
CREATE TABLE installation (
    id TEXT PRIMARY KEY NOT NULL
);
INSERT INTO installation (id) VALUES (lower(hex(randomblob(16))));
