//! Where the collector's store is configured: the server's `d4.toml` (`--config`, else
//! `<data-dir>/d4.toml` when it exists) over the defaults, read once here for every command.

use std::path::Path;

use d4_server::ServerConfig;

/// The server's configuration file over the defaults: `config` when given, else
/// `<data_dir>/d4.toml` when it exists (`data_dir` defaulting to the server's default),
/// else the defaults. What both `d4 server` start from.
pub fn file_config(config: Option<&Path>, data_dir: Option<&Path>) -> anyhow::Result<ServerConfig> {
    let default_dir = data_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ServerConfig::default().data_dir);
    let file = match config {
        Some(f) => Some(f.to_path_buf()),
        None => Some(default_dir.join("d4.toml")).filter(|p| p.is_file()),
    };
    Ok(match &file {
        Some(f) => ServerConfig::from_file(f)?,
        None => ServerConfig::default(),
    })
}
