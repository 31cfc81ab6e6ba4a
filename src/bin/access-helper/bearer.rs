//! The bearer, read fresh from the credential file on every request (the backend rotates it), and the
//! digest that keys the token cache so that the cache never holds the bearer itself.

use std::path::Path;

use aws_lc_rs::digest::{SHA256, digest};
use token_broker::secret::Secret;

use crate::refusal::Refusal;

/// Longest bearer read; a larger file is not a bearer.
const MAX_BEARER_BYTES: u64 = 64 * 1024;

/// SHA-256 of the bearer: a rotated bearer is a different key.
pub type BearerDigest = [u8; 32];

/// The trimmed contents of `path`, or `credential_unavailable` when it is missing, unreadable, empty
/// or not a bearer.
pub async fn read(path: &Path) -> Result<Secret, Refusal> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|_| Refusal::credential_unavailable())?;
    let mut text = String::new();
    file.take(MAX_BEARER_BYTES + 1)
        .read_to_string(&mut text)
        .await
        .map_err(|_| Refusal::credential_unavailable())?;
    let bearer = text.trim();
    let usable = !bearer.is_empty()
        && bearer.len() as u64 <= MAX_BEARER_BYTES
        && bearer.bytes().all(|b| b.is_ascii_graphic());
    if !usable {
        return Err(Refusal::credential_unavailable());
    }
    Ok(Secret::new(bearer))
}

pub fn digest_of(bearer: &Secret) -> BearerDigest {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, bearer.expose().as_bytes()).as_ref());
    out
}
