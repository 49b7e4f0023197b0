//! The browser verifier page (`verify.html`, built from `attest/web`) that
//! exports copy into each bundle, so whoever finds a stick can check it in a
//! browser.

use std::path::Path;

use anyhow::Context;

/// Where the Debian package installs the page.
pub const INSTALLED: &str = "/usr/share/cairn/verify.html";

/// The page to put into bundles: `explicit` (which must be readable), else
/// the installed one if present, else none.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<Option<Vec<u8>>> {
    let (path, required) = match explicit {
        Some(p) => (p, true),
        None => (Path::new(INSTALLED), false),
    };
    match std::fs::read(path) {
        Ok(page) => Ok(Some(page)),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => {
            Err(e).with_context(|| format!("cannot read the verifier page {}", path.display()))
        }
    }
}
