//! What was seen in a period: [`PsslStore::sessions_between`](crate::store::PsslStore::sessions_between)
//! on PostgreSQL (the sessions whose time is in a range, oldest first, paged like the
//! other session lists).

use super::read::{cursor_text, fetch, paged, session_of, SESSION_COLS, TS};
use super::{dberr, PostgresStore};
use crate::model::Session;
use crate::store::{Page, Paged, PsslError};

pub(super) fn sessions_between(
    store: &PostgresStore,
    from: i64,
    until: i64,
    page: &Page,
) -> Result<Paged<Session>, PsslError> {
    // Cursor: "time id", as for `sessions`. A session without a time is at 0.
    let (after_ts, after_id) = match cursor_text(page)? {
        None => (None, 0i64),
        Some(t) => {
            let (a, b) = t.split_once(' ').ok_or(PsslError::Cursor)?;
            (
                Some(a.parse::<i64>().map_err(|_| PsslError::Cursor)?),
                b.parse::<i64>().map_err(|_| PsslError::Cursor)?,
            )
        }
    };
    let (limit, n) = fetch(page);
    let rows = store
        .client()?
        .query(
            &format!(
                "{SESSION_COLS} WHERE {TS} >= $1 AND {TS} < $2 AND ($3::bigint IS NULL OR \
                 ({TS}, s.id) > ($3::bigint, $4::bigint)) ORDER BY {TS}, s.id LIMIT $5"
            ),
            &[&from, &until, &after_ts, &after_id, &n],
        )
        .map_err(dberr)?;
    let items = rows
        .iter()
        .map(|r| Ok((r.get::<_, i64>(0), session_of(r)?)))
        .collect::<Result<Vec<_>, PsslError>>()?;
    let p = paged(items, limit, |(id, s)| format!("{} {id}", s.ts));
    Ok(Paged {
        items: p.items.into_iter().map(|(_, s)| s).collect(),
        next: p.next,
    })
}
