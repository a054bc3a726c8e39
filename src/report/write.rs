//! Writing the report files `OUT/YYYY-MM-DD.{html,md,json,csv}`, each
//! atomically (a temporary file in the same folder, synced, then renamed
//! over the target), so a reader never sees half a report.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::ReportError;
use super::model::Report;
use super::render;

/// Mode of each report file: owner read-write, group read.
pub const FILE_MODE: u32 = 0o640;
/// Mode of a report folder this module creates.
pub const DIR_MODE: u32 = 0o750;

/// An output format of `report daily --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Format {
    Html,
    Markdown,
    Json,
    Csv,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Html, Format::Markdown, Format::Json, Format::Csv];

    pub fn extension(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Markdown => "md",
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "html" => Format::Html,
            "md" | "markdown" => Format::Markdown,
            "json" => Format::Json,
            "csv" => Format::Csv,
            _ => return None,
        })
    }

    /// Parses `--format` values (each may itself be comma-separated);
    /// duplicates collapse. An unknown name is the error's text.
    pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Vec<Format>, String> {
        let mut out = Vec::new();
        for item in items {
            for part in item.as_ref().split(',').filter(|p| !p.trim().is_empty()) {
                let f = Format::parse(part).ok_or_else(|| {
                    format!("unknown report format {part:?} (expected html, md, json or csv)")
                })?;
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        if out.is_empty() {
            return Err("no report format given (expected html, md, json or csv)".into());
        }
        out.sort();
        Ok(out)
    }
}

/// `OUT/DATE.EXT`.
pub fn report_path(out: &Path, date: &str, format: Format) -> PathBuf {
    out.join(format!("{date}.{}", format.extension()))
}

/// Writes `report` in each format under `out` (created if missing) and
/// returns the paths written. HTML links to recordings under
/// `recordings_root`, relative to `out`.
pub fn write_report(
    report: &Report,
    formats: &[Format],
    out: &Path,
    recordings_root: &Path,
) -> Result<Vec<PathBuf>, ReportError> {
    // Reports name people, sources and commands: not for every local user.
    // Only folders made here get 0750 (set again past the umask for the
    // folder itself); an existing one keeps its mode.
    let existed = out.is_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(out)
        .map_err(|e| ReportError::io(out, e))?;
    if !existed {
        std::fs::set_permissions(out, std::fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| ReportError::io(out, e))?;
    }
    let links = render::Links {
        recordings: relative_url(out, recordings_root),
    };
    let mut written = Vec::new();
    for &f in formats {
        let bytes = match f {
            Format::Html => render::html(report, &links).into_bytes(),
            Format::Markdown => render::markdown(report, &links).into_bytes(),
            Format::Csv => render::csv(report).into_bytes(),
            Format::Json => render::json(report).map_err(|e| ReportError::Render(e.to_string()))?,
        };
        let path = report_path(out, &report.date, f);
        write_atomic(&path, &bytes)?;
        written.push(path);
    }
    Ok(written)
}

/// Tightens the configured reports folder (`[server] reports`, Gatehouse's
/// own) to at most [`DIR_MODE`]: a folder made earlier by hand or by an
/// older version may be world-readable. Never loosens it, and is not used
/// for a `--out` folder, which may be anyone's.
pub fn secure_reports_folder(dir: &Path) -> Result<(), ReportError> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => m,
        // Missing: write_report creates it with DIR_MODE.
        _ => return Ok(()),
    };
    let mode = meta.permissions().mode();
    let tight = mode & !(0o777 & !DIR_MODE);
    if tight != mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(tight))
            .map_err(|e| ReportError::io(dir, e))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` (mode [`FILE_MODE`]) through a temporary file
/// in the same folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        // Exactly FILE_MODE, whatever the umask.
        f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the folder is synced.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        ReportError::io(path, e)
    })
}

/// The folder `to` as a relative URL path seen from the folder `from`
/// (both made absolute against the current directory, `.` and `..`
/// resolved lexically), e.g. `../recordings`.
pub fn relative_url(from: &Path, to: &Path) -> String {
    let from = normalize(from);
    let to = normalize(to);
    let common = from
        .iter()
        .zip(to.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let mut segs: Vec<String> = Vec::new();
    for _ in common..from.len() {
        segs.push("..".into());
    }
    segs.extend(to.iter().skip(common).cloned());
    if segs.is_empty() {
        return ".".into();
    }
    // `..` must stay literal; everything else is percent-encoded.
    segs.iter()
        .map(|s| {
            if s == ".." {
                s.clone()
            } else {
                super::escape::url_path(std::slice::from_ref(s))
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn normalize(p: &Path) -> Vec<String> {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out: Vec<String> = Vec::new();
    for c in abs.components() {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_refuse_unknown_names() {
        assert_eq!(
            Format::parse_list(&["json,html", "md"]).unwrap(),
            vec![Format::Html, Format::Markdown, Format::Json]
        );
        assert_eq!(
            Format::parse_list(&["csv", "CSV"]).unwrap(),
            vec![Format::Csv]
        );
        assert!(Format::parse_list(&["pdf"]).unwrap_err().contains("pdf"));
        assert!(Format::parse_list::<&str>(&[]).is_err());
    }

    #[test]
    fn relative_urls_between_folders() {
        assert_eq!(
            relative_url(
                Path::new("/srv/gh/reports"),
                Path::new("/srv/gh/recordings")
            ),
            "../recordings"
        );
        assert_eq!(
            relative_url(
                Path::new("/srv/gh/reports/daily"),
                Path::new("/var/rec ordings")
            ),
            "../../../../var/rec%20ordings"
        );
        assert_eq!(relative_url(Path::new("/a/b"), Path::new("/a/b")), ".");
        assert_eq!(
            relative_url(Path::new("/a/./b/../c"), Path::new("/a/rec")),
            "../rec"
        );
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("2026-01-01.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let err = write_atomic(&dir.path().join("missing/x.json"), b"x").unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
