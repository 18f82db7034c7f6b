//! Ids derived from the config digest, so that identical configs give identical images.

use sha2::{Digest, Sha256};

/// 32 bytes derived from `seed` for one `purpose` (domain separated, so ids never collide).
pub fn derive_bytes(seed: &[u8; 32], purpose: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"pideploy-image/v1\0");
    h.update(purpose.as_bytes());
    h.update([0u8]);
    h.update(seed);
    h.finalize().into()
}

/// A random-looking (version 4, RFC 4122 variant) UUID derived from the seed.
pub(crate) fn derive_uuid(seed: &[u8; 32], purpose: &str) -> uuid::Uuid {
    let b = derive_bytes(seed, purpose);
    let mut sixteen = [0u8; 16];
    sixteen.copy_from_slice(&b[..16]);
    uuid::Builder::from_random_bytes(sixteen).into_uuid()
}

/// A non-zero 32-bit id derived from the seed (a zero MBR signature or FAT serial reads as "none").
pub(crate) fn derive_u32(seed: &[u8; 32], purpose: &str) -> u32 {
    let b = derive_bytes(seed, purpose);
    let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    if v == 0 {
        1
    } else {
        v
    }
}
