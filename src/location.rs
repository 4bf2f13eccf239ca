//! `s3://bucket[/prefix]` locations and the key mapping between a source and a destination range.

use std::fmt;
use std::str::FromStr;

/// A bucket and a key prefix (possibly empty), as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    pub prefix: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid S3 URL {url:?}: {reason}; write it as s3://BUCKET or s3://BUCKET/PREFIX")]
pub struct LocationError {
    pub url: String,
    pub reason: &'static str,
}

impl FromStr for Location {
    type Err = LocationError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let error = |reason| LocationError {
            url: url.to_string(),
            reason,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| error("it does not start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(error("the bucket name is missing"));
        }
        validate_bucket_name(bucket).map_err(error)?;
        Ok(Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// S3's general-purpose bucket naming rules, checked before any request so a typo fails fast.
pub fn validate_bucket_name(name: &str) -> Result<(), &'static str> {
    if !(3..=63).contains(&name.len()) {
        return Err("a bucket name has 3 to 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err("a bucket name has only lowercase letters, digits, '-' and '.'");
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err("a bucket name starts and ends with a letter or digit");
    }
    if name.contains("..") {
        return Err("a bucket name has no two adjacent periods");
    }
    if name.split('.').count() == 4 && name.split('.').all(|part| part.parse::<u8>().is_ok()) {
        return Err("a bucket name is not an IP address");
    }
    if ["xn--", "sthree-", "amzn-s3-demo-"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return Err("a bucket name does not start with xn--, sthree- or amzn-s3-demo- (reserved)");
    }
    if ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        return Err(
            "a bucket name does not end with -s3alias, --ol-s3, .mrap, --x-s3 or --table-s3 (reserved)",
        );
    }
    Ok(())
}

/// `prefix` ending in `/` (unless empty), to put names under it.
pub fn as_directory(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

impl Location {
    /// True when one range contains the other, so copying between them would read what it writes.
    pub fn overlaps(&self, other: &Location) -> bool {
        self.bucket == other.bucket
            && (self.prefix.starts_with(&other.prefix) || other.prefix.starts_with(&self.prefix))
    }
}

/// Maps source keys to destination keys by replacing the source prefix with the destination prefix,
/// like `aws s3 cp --recursive`.
#[derive(Debug, Clone)]
pub struct KeyMapping {
    pub source: Location,
    pub destination: Location,
}

impl KeyMapping {
    /// The part of a source key below the source prefix. Listing only returns keys under the prefix.
    pub fn relative<'k>(&self, source_key: &'k str) -> &'k str {
        source_key
            .strip_prefix(self.source.prefix.as_str())
            .unwrap_or(source_key)
    }

    pub fn destination_key(&self, source_key: &str) -> String {
        format!("{}{}", self.destination.prefix, self.relative(source_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(url: &str) -> Location {
        url.parse().unwrap()
    }

    #[test]
    fn parses_bucket_and_prefix() {
        assert_eq!(location("s3://my-bucket").prefix, "");
        assert_eq!(location("s3://my-bucket/").prefix, "");
        let with_prefix = location("s3://my-bucket/a/b/");
        assert_eq!(with_prefix.bucket, "my-bucket");
        assert_eq!(with_prefix.prefix, "a/b/");
    }

    #[test]
    fn rejects_malformed_urls_with_the_reason() {
        for (url, reason) in [
            ("my-bucket/x", "does not start with s3://"),
            ("s3:///x", "bucket name is missing"),
            ("s3://My_Bucket", "only lowercase"),
            ("s3://ab", "3 to 63"),
            ("s3://-ab", "starts and ends"),
            ("s3://a..b", "adjacent periods"),
            ("s3://192.168.1.1", "IP address"),
        ] {
            let error = url.parse::<Location>().unwrap_err();
            assert!(error.to_string().contains(reason), "{url}: {error}");
        }
    }

    #[test]
    fn bucket_names_follow_s3s_rules() {
        for good in [
            "abc",
            "my-bucket.2024",
            &"a".repeat(63),
            "xn-ok",
            "a-s3alias-not-at-end",
        ] {
            assert_eq!(validate_bucket_name(good), Ok(()), "{good}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "Upper",
            "under_score",
            "-start",
            "end-",
            "two..dots",
            "192.168.1.1",
            "xn--punycode",
            "sthree-bucket",
            "amzn-s3-demo-bucket",
            "name-s3alias",
            "name--ol-s3",
            "name.mrap",
            "name--x-s3",
            "name--table-s3",
        ] {
            assert!(validate_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn maps_prefixes_like_aws_s3_cp() {
        let mapping = KeyMapping {
            source: location("s3://src/data/"),
            destination: location("s3://dst/backup/2024/"),
        };
        assert_eq!(
            mapping.destination_key("data/x/y.txt"),
            "backup/2024/x/y.txt"
        );
        let same = KeyMapping {
            source: location("s3://src"),
            destination: location("s3://dst"),
        };
        assert_eq!(same.destination_key("k e y+%"), "k e y+%");
    }

    #[test]
    fn detects_overlapping_ranges() {
        assert!(location("s3://bkt/a/").overlaps(&location("s3://bkt/a/b/")));
        assert!(location("s3://bkt").overlaps(&location("s3://bkt/x/")));
        assert!(!location("s3://bkt/a/").overlaps(&location("s3://bkt/b/")));
        assert!(!location("s3://bkt/a/").overlaps(&location("s3://ckt/a/")));
    }
}
