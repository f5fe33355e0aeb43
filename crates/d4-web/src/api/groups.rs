//! Sensor groups: `GET/POST /groups`, `GET/PUT/DELETE /groups/{name}`. A group is
//! `{name, description, sensors: [uuid...]}` (UUIDs as 32 hex digits in answers).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use d4_store::SensorGroup;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{body, done, ok, ApiResult};
use crate::actions;
use crate::extract::{Admin, Auth, Read};
use crate::labels;
use crate::WebState;

/// A group as the API shows it.
#[derive(Serialize)]
struct GroupView<'a> {
    description: &'a str,
    name: &'a str,
    sensors: Vec<String>,
}

impl<'a> From<&'a SensorGroup> for GroupView<'a> {
    fn from(g: &'a SensorGroup) -> GroupView<'a> {
        GroupView {
            description: &g.description,
            name: &g.name,
            sensors: g.sensors.iter().map(|u| u.simple().to_string()).collect(),
        }
    }
}

#[derive(Deserialize)]
struct GroupReq {
    /// Required on POST; on PUT the path's name is used (a different one is refused).
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    sensors: Option<Vec<String>>,
}

fn members(list: &[String]) -> crate::failure::Res<Vec<uuid::Uuid>> {
    list.iter().map(|s| actions::parse_uuid(s)).collect()
}

pub(super) async fn groups(State(st): State<WebState>, _: Auth<Read>) -> ApiResult {
    let list = st.store().list_groups().await?;
    let groups: Vec<GroupView> = list.iter().map(GroupView::from).collect();
    ok(json!({ "groups": groups }))
}

pub(super) async fn group_create(
    State(st): State<WebState>,
    _: Auth<Admin>,
    b: Bytes,
) -> ApiResult {
    let req: GroupReq = body(&b)?;
    let Some(name) = req.name else {
        return Err(crate::failure::Failure::bad("name is required"));
    };
    let g = SensorGroup {
        name,
        description: req.description.unwrap_or_default(),
        sensors: members(&req.sensors.unwrap_or_default())?,
    };
    let g = labels::create_group(st.store(), g).await?;
    Ok((StatusCode::CREATED, Json(GroupView::from(&g))).into_response())
}

pub(super) async fn group_get(
    State(st): State<WebState>,
    _: Auth<Read>,
    Path(name): Path<String>,
) -> ApiResult {
    let g = labels::group(st.store(), &name).await?;
    ok(GroupView::from(&g))
}

/// Change the description and/or the members (absent fields are kept).
pub(super) async fn group_put(
    State(st): State<WebState>,
    _: Auth<Admin>,
    Path(name): Path<String>,
    b: Bytes,
) -> ApiResult {
    let req: GroupReq = body(&b)?;
    if req.name.as_deref().is_some_and(|n| n != name) {
        return Err(crate::failure::Failure::bad(
            "a group cannot be renamed: create the new one and delete this one",
        ));
    }
    let mut g = labels::group(st.store(), &name).await?;
    if let Some(d) = req.description {
        g.description = d;
    }
    if let Some(s) = req.sensors {
        g.sensors = members(&s)?;
    }
    let g = labels::update_group(st.store(), g).await?;
    ok(GroupView::from(&g))
}

pub(super) async fn group_delete(
    State(st): State<WebState>,
    _: Auth<Admin>,
    Path(name): Path<String>,
) -> ApiResult {
    labels::delete_group(st.store(), &name).await?;
    done()
}
