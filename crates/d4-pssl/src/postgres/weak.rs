//! Weak-key findings in the PostgreSQL store (`d4_weak_key`, see `schema.sql`) and the
//! paged walk of the RSA moduli of `public_key` for the batch GCD.

use ::postgres::Row;

use super::{dberr, hex_key, pg_text, PostgresStore};
use crate::store::{Page, Paged, PsslError, WeakKey};

/// Separates the parts of a finding's cursor text (not in check names or hex).
const SEP: char = '\u{1f}';

fn fetch(page: &Page) -> (usize, i64) {
    let limit = page.limit.max(1);
    (limit, i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1)
}

fn cursor_text(page: &Page) -> Result<Option<String>, PsslError> {
    page.cursor
        .as_ref()
        .map(|c| {
            hex::decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(PsslError::Cursor)
        })
        .transpose()
}

fn paged<T>(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Paged<T> {
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(|t| hex::encode(cursor(t)));
        Paged { items, next }
    } else {
        Paged { items, next: None }
    }
}

const COLUMNS: &str = "spki, \"check\", subtest, how, p, q, d, partners, found";

fn weak_of(r: &Row) -> WeakKey {
    let subtest: String = r.get(2);
    WeakKey {
        spki_sha256: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(0)).into_owned(),
        check: r.get(1),
        subtest: (!subtest.is_empty()).then_some(subtest),
        how: r.get(3),
        p: r.get(4),
        q: r.get(5),
        d: r.get(6),
        partners: r.get(7),
        found: r.get(8),
    }
}

fn weak_cursor(w: &WeakKey) -> String {
    let sub = w.subtest.as_deref().unwrap_or("");
    format!("{}{SEP}{}{SEP}{sub}{SEP}{}", w.spki_sha256, w.check, w.how)
}

impl PostgresStore {
    pub(super) fn record_weak_impl(&self, findings: &[WeakKey]) -> Result<(), PsslError> {
        if findings.is_empty() {
            return Ok(());
        }
        let mut c = self.client()?;
        let mut tx = c.transaction().map_err(dberr)?;
        for w in findings {
            let spki = hex_key::<32>("SPKI SHA-256", &w.spki_sha256)?;
            tx.execute(
                &format!(
                    "INSERT INTO d4_weak_key ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (spki, \"check\", subtest, how) DO UPDATE SET \
                     p = COALESCE(d4_weak_key.p, EXCLUDED.p), \
                     q = COALESCE(d4_weak_key.q, EXCLUDED.q), \
                     d = COALESCE(d4_weak_key.d, EXCLUDED.d), \
                     partners = ARRAY(SELECT DISTINCT x FROM \
                       unnest(d4_weak_key.partners || EXCLUDED.partners) AS x ORDER BY x)"
                ),
                &[
                    &spki,
                    &pg_text(&w.check),
                    &pg_text(w.subtest.as_deref().unwrap_or("")),
                    &pg_text(&w.how),
                    &w.p,
                    &w.q,
                    &w.d,
                    &w.partners,
                    &w.found,
                ],
            )
            .map_err(dberr)?;
        }
        tx.commit().map_err(dberr)
    }

    pub(super) fn weak_keys_impl(&self, page: &Page) -> Result<Paged<WeakKey>, PsslError> {
        let (limit, n) = fetch(page);
        let after = cursor_text(page)?;
        let (spki, check, sub, how) = match &after {
            Some(t) => {
                let parts: Vec<&str> = t.split(SEP).collect();
                match parts[..] {
                    [a, b, c, d] => (Some(a.as_bytes().to_vec()), b, c, d),
                    _ => return Err(PsslError::Cursor),
                }
            }
            None => (None, "", "", ""),
        };
        let rows = self
            .client()?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM d4_weak_key WHERE $1::bytea IS NULL OR \
                     (spki, \"check\", subtest, how) > ($1, $2, $3, $4) \
                     ORDER BY spki, \"check\", subtest, how LIMIT $5"
                ),
                &[&spki, &check, &sub, &how, &n],
            )
            .map_err(dberr)?;
        let items = rows.iter().map(weak_of).collect();
        Ok(paged(items, limit, weak_cursor))
    }

    pub(super) fn key_weakness_impl(&self, spki_sha256: &str) -> Result<Vec<WeakKey>, PsslError> {
        let spki = hex_key::<32>("SPKI SHA-256", spki_sha256)?;
        let rows = self
            .client()?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM d4_weak_key WHERE spki = $1 \
                     ORDER BY \"check\", subtest, how"
                ),
                &[&spki],
            )
            .map_err(dberr)?;
        Ok(rows.iter().map(weak_of).collect())
    }

    pub(super) fn rsa_moduli_impl(
        &self,
        page: &Page,
    ) -> Result<Paged<(String, String)>, PsslError> {
        let (limit, n) = fetch(page);
        let after = cursor_text(page)?.map(String::into_bytes);
        let rows = self
            .client()?
            .query(
                "SELECT hash, modulus FROM public_key WHERE modulus IS NOT NULL AND modulus <> '' \
                 AND ($1::bytea IS NULL OR hash > $1) ORDER BY hash LIMIT $2",
                &[&after, &n],
            )
            .map_err(dberr)?;
        let items = rows
            .iter()
            .map(|r| {
                (
                    String::from_utf8_lossy(&r.get::<_, Vec<u8>>(0)).into_owned(),
                    r.get::<_, String>(1),
                )
            })
            .collect();
        Ok(paged(items, limit, |(s, _)| s.clone()))
    }
}
