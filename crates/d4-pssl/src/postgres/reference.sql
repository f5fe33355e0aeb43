-- The tables of the reference analyzer (analyzer-d4-passivessl), written from their description
-- in shared/TLS.md §6: same names, columns and types, so a database either program created can be
-- read and written by both. Hashes are the ASCII bytes of lowercase hex in `bytea` columns, as the
-- reference stores them: certificate = SHA-1 of the DER, public_key = SHA-256 of the
-- SubjectPublicKeyInfo DER, ja3 = the MD5 digest (JA3 and JA3S, told apart by `type`).
-- Idempotent (IF NOT EXISTS): it runs on every open, also over an existing reference database.
-- `ltree` is only for certificate.cert_chain (the reference writes it; d4 leaves it NULL).
-- The NOT NULL constraints are the reference's (its analyzer always fills those columns): d4
-- writes '' for the certificate paths, and schema.sql relaxes those of "sessionRecord" (d4
-- stores sessions without addresses or JA3).
CREATE EXTENSION IF NOT EXISTS ltree;

CREATE TABLE IF NOT EXISTS public_key (
    hash bytea PRIMARY KEY,
    type text NOT NULL,
    modulus text,
    exponent integer,
    modulus_size integer,
    "P" numeric,
    "Q" numeric,
    "G" numeric,
    "Y" numeric,
    "X" numeric,
    "N" numeric,
    "B" numeric,
    "Gx" numeric,
    "Gy" numeric,
    bitsize integer,
    curve_name varchar(256),
    private bytea
);

CREATE TABLE IF NOT EXISTS certificate (
    hash bytea PRIMARY KEY,
    issuer text,
    subject text,
    cert_chain ltree,
    "is_CA" boolean NOT NULL DEFAULT false,
    is_valid_chain boolean NOT NULL DEFAULT false,
    "is_SS" boolean NOT NULL DEFAULT false,
    atrest_path varchar(4096) NOT NULL,
    mounted_path varchar(4096) NOT NULL,
    fs_type smallint DEFAULT 0
);

CREATE TABLE IF NOT EXISTS many_certificate_has_many_public_key (
    hash_certificate bytea NOT NULL REFERENCES certificate (hash),
    hash_public_key bytea NOT NULL REFERENCES public_key (hash),
    PRIMARY KEY (hash_certificate, hash_public_key)
);

CREATE TABLE IF NOT EXISTS ja3 (
    hash bytea PRIMARY KEY,
    raw text,
    type varchar(16) NOT NULL
);

CREATE TABLE IF NOT EXISTS "sessionRecord" (
    id bigserial PRIMARY KEY,
    dst_ip inet NOT NULL,
    src_ip inet NOT NULL,
    dst_port integer NOT NULL,
    src_port integer NOT NULL,
    hash_ja3 bytea NOT NULL REFERENCES ja3 (hash),
    "timestamp" timestamptz(0)
);

CREATE TABLE IF NOT EXISTS "many_sessionRecord_has_many_certificate" (
    "id_sessionRecord" bigint NOT NULL REFERENCES "sessionRecord" (id),
    hash_certificate bytea NOT NULL REFERENCES certificate (hash),
    PRIMARY KEY ("id_sessionRecord", hash_certificate)
);

CREATE TABLE IF NOT EXISTS fuzzy_hash (
    id bigserial PRIMARY KEY,
    type text NOT NULL,
    value text NOT NULL,
    "id_sessionRecord" bigint REFERENCES "sessionRecord" (id)
);
