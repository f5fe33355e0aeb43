//! Admission policy: the blocklist and the accepted types and extended types.

use axum::body::Bytes;
use axum::extract::{Path, State};
use d4_store::{now, Block};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{body, done, ok, ApiResult};
use crate::actions;
use crate::extract::{Admin, Auth, Read};
use crate::failure::Failure;
use crate::WebState;

/// A block as the API shows it.
#[derive(Serialize)]
struct BlockView<'a> {
    created: u64,
    expires: Option<u64>,
    kind: &'static str,
    reason: &'a str,
    value: String,
}

impl<'a> From<&'a Block> for BlockView<'a> {
    fn from(b: &'a Block) -> BlockView<'a> {
        let (kind, value) = actions::target_kind_value(&b.target);
        BlockView {
            created: b.created,
            expires: b.expires,
            kind,
            reason: &b.reason,
            value,
        }
    }
}

pub(super) async fn blocks(State(st): State<WebState>, _: Auth<Read>) -> ApiResult {
    let list = st.store().list_blocks(now()).await?;
    let blocks: Vec<BlockView> = list.iter().map(BlockView::from).collect();
    ok(json!({ "blocks": blocks }))
}

#[derive(Deserialize)]
struct BlockAdd {
    kind: String,
    value: String,
    #[serde(default)]
    reason: String,
    /// Seconds; absent = permanent.
    #[serde(default)]
    expires_in: Option<u64>,
}

pub(super) async fn block_add(State(st): State<WebState>, _: Auth<Admin>, b: Bytes) -> ApiResult {
    let req: BlockAdd = body(&b)?;
    let target = actions::parse_target(&req.kind, &req.value)?;
    actions::add_block(st.store(), target.clone(), &req.reason, req.expires_in).await?;
    if let d4_store::BlockTarget::Uuid(u) = target {
        actions::kick(st.store(), u).await?;
    }
    done()
}

#[derive(Deserialize)]
struct BlockDel {
    kind: String,
    value: String,
}

pub(super) async fn block_remove(
    State(st): State<WebState>,
    _: Auth<Admin>,
    b: Bytes,
) -> ApiResult {
    let req: BlockDel = body(&b)?;
    let target = actions::parse_target(&req.kind, &req.value)?;
    actions::remove_block(st.store(), target).await?;
    done()
}

pub(super) async fn types(State(st): State<WebState>, _: Auth<Read>) -> ApiResult {
    let t = st.store().accepted_types().await?;
    let e = st.store().accepted_ext_types().await?;
    ok(json!({"accepted_types": t, "accepted_ext_types": e}))
}

#[derive(Deserialize)]
struct Accepted {
    accepted: bool,
}

pub(super) async fn type_put(
    State(st): State<WebState>,
    Path(t): Path<String>,
    _: Auth<Admin>,
    b: Bytes,
) -> ApiResult {
    let t: u8 = t
        .parse()
        .map_err(|_| Failure::bad(format!("invalid type {t:?} (1..=255)")))?;
    let req: Accepted = body(&b)?;
    actions::set_type(st.store(), t, req.accepted).await?;
    done()
}

pub(super) async fn type_ext_put(
    State(st): State<WebState>,
    Path(name): Path<String>,
    _: Auth<Admin>,
    b: Bytes,
) -> ApiResult {
    let req: Accepted = body(&b)?;
    actions::set_ext(st.store(), &name, req.accepted).await?;
    done()
}
