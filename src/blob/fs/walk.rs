//! Ordered, resumable walk of a bucket directory: keys compare component by component.
use std::cmp::Ordering;
use std::path::Path;

use super::BlobPage;

pub fn page(base: &Path, after: &[String], limit: usize) -> std::io::Result<BlobPage> {
    let mut keys = Vec::new();
    let mut prefix = Vec::new();
    visit(base, &mut prefix, after, limit + 1, &mut keys)?;
    let next = (keys.len() > limit).then(|| {
        keys.truncate(limit);
        keys.last().cloned()
    });
    Ok(BlobPage { keys, next: next.flatten() })
}

fn visit(
    dir: &Path,
    prefix: &mut Vec<String>,
    after: &[String],
    want: usize,
    out: &mut Vec<String>,
) -> std::io::Result<()> {
    let mut entries: Vec<(String, bool)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let is_dir = e.file_type().ok()?.is_dir();
            Some((name, is_dir))
        })
        .collect();
    entries.sort();
    for (name, is_dir) in entries {
        if out.len() >= want {
            return Ok(());
        }
        prefix.push(name);
        let depth = prefix.len();
        let cmp = prefix.as_slice().cmp(&after[..depth.min(after.len())]);
        if is_dir {
            if cmp != Ordering::Less {
                visit(&dir.join(&prefix[depth - 1]), prefix, after, want, out)?;
            }
        } else if prefix.as_slice() > after {
            out.push(prefix.join("/"));
        }
        prefix.pop();
    }
    Ok(())
}

/// Removes `dir` and everything under it; the number of files removed (0 when absent).
pub fn remove_tree(dir: &Path) -> std::io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            removed += remove_tree(&entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(removed),
    }
}
