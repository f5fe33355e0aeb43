//! The state of a meta-header stream (type 2 then 254): the meta header is gathered
//! (bounded), checked against the accepted extended types and saved as JSON, then the
//! type-254 data goes to the extended type's handler ([`ExtHandler`]).

use std::path::PathBuf;

use d4_proto::{types, MetaHeader, MetaHeaderBuilder};

use crate::ext::ExtHandler;
use crate::layout::utc;
use crate::worker::Ctx;
use crate::WorkerError;

/// Where a 2/254 stream is: reading its meta header, handing data to its extended type's
/// handler, or closed.
pub(crate) enum MetaState {
    Header(MetaHeaderBuilder),
    Data(Box<ExtHandler>),
    Done,
}

pub(crate) fn handle_meta(
    m: &mut MetaState,
    ctx: &mut Ctx<'_>,
    d4_type: u8,
    payload: &[u8],
) -> Result<(), WorkerError> {
    match m {
        MetaState::Header(b) if d4_type == types::META_HEADER => Ok(b.push(payload)?),
        MetaState::Header(b) => {
            if b.is_empty() {
                return Err(WorkerError::NoMetaHeader);
            }
            let meta = b.finish()?;
            if !ctx.shared.cfg.ext_accepted(meta.ext_type()) {
                return Err(WorkerError::ExtTypeNotAccepted(meta.ext_type().to_owned()));
            }
            save_meta(ctx, &meta, b.raw())?;
            let mut h = Box::new(ExtHandler::new(ctx, &meta));
            h.handle(ctx, payload)?;
            *m = MetaState::Data(h);
            Ok(())
        }
        MetaState::Data(h) if d4_type == types::EXTENDED => h.handle(ctx, payload),
        MetaState::Data(_) | MetaState::Done => Err(WorkerError::WrongType {
            expected: types::EXTENDED,
            got: d4_type,
        }),
    }
}

/// Saves the raw meta header as `<data>/<uuid>/254/Y/M/D/<ext>/<uuid>-Y-M-D-HHMMSS.json`.
pub(crate) fn save_meta(
    ctx: &mut Ctx<'_>,
    meta: &MetaHeader,
    raw: &[u8],
) -> Result<PathBuf, WorkerError> {
    let ext = meta.ext_type();
    let t = utc(ctx.now);
    let dir =
        crate::layout::day_dir(&ctx.shared.cfg.data_dir, ctx.sid, types::EXTENDED, t).join(ext);
    let stem = crate::layout::file_stem(ctx.sid, t);
    let p = crate::ext::save_new(&dir, &stem, ".json", raw)?;
    ctx.stats.files_saved += 1;
    Ok(p)
}
