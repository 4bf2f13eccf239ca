//! The small hashes the tool names things by: FNV-1a for stable names and shards, MD5 for S3's
//! checksums, both written as lowercase hex.

/// 64-bit FNV-1a: stable across runs, machines and versions of this tool.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex MD5 of `bytes`, as S3 and inventory manifests write it.
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    hex(&md5::Md5::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
