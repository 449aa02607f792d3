//! Files the server writes that hold secrets, and the modes that keep them private.

use std::path::Path;

use anyhow::Context as _;

/// Makes `path` readable by this user only (`mode` 0700 for a directory, 0600 for a file).
pub fn private(path: &Path, mode: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("restricting {} to its owner", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Writes `content` and a newline to `path`, created readable by this user only.
pub fn write_secret_file(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(content.as_bytes())?;
    file.write_all(b"\n")?;
    Ok(())
}
