//! Random identifiers (GUIDs, Entra-style client secrets, Key Vault version ids, opaque claim values) and
//! the constant-time comparison of presented secrets.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;

/// A random version-4 GUID in lower case.
pub fn guid() -> String {
    let bits: u128 = rand::rng().random();
    let version_4 = (bits & !(0xf_u128 << 76)) | (0x4_u128 << 76);
    let bits = (version_4 & !(0x3_u128 << 62)) | (0x2_u128 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// True for the 8-4-4-4-12 hexadecimal GUID form.
pub fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `bytes` random bytes, base64url without padding.
pub fn random_b64url(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(buf.as_mut_slice());
    URL_SAFE_NO_PAD.encode(buf)
}

/// A 40-character client secret shaped like the ones the Entra portal hands out (`abc8Q~...`).
pub fn client_secret() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";
    let mut rng = rand::rng();
    let mut pick = |n: usize, alphabet: &[u8]| -> String {
        (0..n)
            .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
            .collect()
    };
    // Alphanumeric first, so the secret never starts like a command-line flag.
    format!("{}8Q~{}", pick(3, &CHARS[..62]), pick(34, CHARS))
}

/// A Key Vault secret version id: 32 lower-case hex digits.
pub fn secret_version() -> String {
    let bits: u128 = rand::rng().random();
    format!("{bits:032x}")
}

/// Compares a presented secret with the expected one without an early exit on the first difference.
pub fn secrets_equal(presented: &str, expected: &str) -> bool {
    let (a, b) = (presented.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_version_4_and_recognised() {
        let id = guid();
        assert!(is_guid(&id), "{id}");
        assert_eq!(&id[14..15], "4");
        assert!(!is_guid("not-a-guid"));
    }

    #[test]
    fn client_secrets_have_the_portal_shape() {
        let secret = client_secret();
        assert_eq!(secret.len(), 40);
        assert_eq!(&secret[3..6], "8Q~");
    }
}
