-- d4's own tables beside the reference's (reference.sql), prefixed `d4_`: what the reference
-- lacks. Hash columns follow the reference's convention (ASCII bytes of lowercase hex in bytea)
-- so they join with its tables; times are Unix seconds (bigint) except "sessionRecord"."timestamp".
-- Idempotent (IF NOT EXISTS): it runs on every open. Layout version in d4_meta ('layout').
-- d4 stores sessions without addresses, ports or JA3 (a record that lacks them): the reference
-- declares those "sessionRecord" columns NOT NULL, so the constraint is dropped where present
-- (its analyzer always fills them, so it is not affected).
DO $$
DECLARE col text;
BEGIN
    FOREACH col IN ARRAY ARRAY['dst_ip', 'src_ip', 'dst_port', 'src_port', 'hash_ja3'] LOOP
        IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '"sessionRecord"'::regclass
                   AND attname = col AND attnotnull) THEN
            EXECUTE format('ALTER TABLE "sessionRecord" ALTER COLUMN %I DROP NOT NULL', col);
        END IF;
    END LOOP;
END $$;

CREATE TABLE IF NOT EXISTS d4_meta (
    name text PRIMARY KEY,
    value bigint NOT NULL
);

-- Per certificate: the DER (kept once) and the facts d4_tls reads from it.
CREATE TABLE IF NOT EXISTS d4_certificate (
    hash bytea PRIMARY KEY REFERENCES certificate (hash),
    sha256 bytea NOT NULL UNIQUE,
    der bytea NOT NULL,
    serial text NOT NULL,
    not_before bigint NOT NULL,
    not_after bigint NOT NULL,
    sans text[] NOT NULL,
    spki bytea NOT NULL
);

-- Per public key: what does not fit the reference's columns (an exponent past 32 bits).
CREATE TABLE IF NOT EXISTS d4_public_key (
    hash bytea PRIMARY KEY REFERENCES public_key (hash),
    exponent text
);

-- Per session d4 stored: its identity (crate::model::Session::id, 32 raw bytes: the same record
-- twice is one session) and the fields "sessionRecord" lacks. `chain` holds the SHA-1s in the
-- order the server sent them (chain positions, the leaf for SNI links); `sni_lower` the SNI in
-- ASCII lowercase for lookups.
CREATE TABLE IF NOT EXISTS d4_session (
    sid bytea PRIMARY KEY,
    id bigint NOT NULL UNIQUE REFERENCES "sessionRecord" (id),
    ja3_raw text NOT NULL,
    ja3s text NOT NULL,
    ja3s_raw text NOT NULL,
    ja4 text NOT NULL,
    ja4_r text NOT NULL,
    sni text NOT NULL,
    sni_lower text NOT NULL,
    alpn text[] NOT NULL,
    tlsh text NOT NULL,
    transport text NOT NULL,
    chain text[] NOT NULL
);

-- Per certificate: the positions in the chain d4's sessions sent it at, a bit each (bit 63:
-- position 63 or later), so a certificate view does not read all its sessions' chains.
CREATE TABLE IF NOT EXISTS d4_chain_position (
    hash bytea PRIMARY KEY,
    positions bigint NOT NULL
);

-- Lookups: addresses (CIDR queries with <<= use the btree inet indexes), fingerprints, names.
CREATE INDEX IF NOT EXISTS d4_session_record_dst ON "sessionRecord" (dst_ip, dst_port);
CREATE INDEX IF NOT EXISTS d4_session_record_src ON "sessionRecord" (src_ip);
CREATE INDEX IF NOT EXISTS d4_session_record_ja3 ON "sessionRecord" (hash_ja3, src_ip);
CREATE INDEX IF NOT EXISTS d4_session_certificate ON "many_sessionRecord_has_many_certificate" (hash_certificate);
CREATE INDEX IF NOT EXISTS d4_certificate_key ON many_certificate_has_many_public_key (hash_public_key);
CREATE INDEX IF NOT EXISTS d4_fuzzy_hash_session ON fuzzy_hash ("id_sessionRecord");
CREATE INDEX IF NOT EXISTS d4_session_ja3s ON d4_session (ja3s);
CREATE INDEX IF NOT EXISTS d4_session_ja4 ON d4_session (ja4);
CREATE INDEX IF NOT EXISTS d4_session_sni ON d4_session (sni_lower);

-- Weak-key findings per public key (d4_keys check names): `how` is 'check' (per-key check at
-- ingest) or 'batch_gcd'; recovered numbers as lowercase hex; `partners` the SPKI SHA-256s of
-- keys sharing a prime; `found` the first time it was found (a finding is recorded once).
CREATE TABLE IF NOT EXISTS d4_weak_key (
    spki bytea NOT NULL,
    "check" text NOT NULL,
    subtest text NOT NULL,
    how text NOT NULL,
    p text,
    q text,
    d text,
    partners text[] NOT NULL,
    found bigint NOT NULL,
    PRIMARY KEY (spki, "check", subtest, how)
);
