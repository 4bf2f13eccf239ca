//! Rows of an S3 Inventory CSV data file or of a Batch Operations CSV manifest, parsed into the versions
//! they name. Keys are URL-encoded the way S3 Inventory writes them (`application/x-www-form-urlencoded`:
//! a space is `+`, a plus sign `%2B`), so decoding turns `+` into a space; a plus sign in a key is
//! always written `%2B`, by S3 and by this tool.

use std::fmt;

/// One version an input names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub key: String,
    /// The version id (`null` for the null version); None names the key's current version (an inventory
    /// of current versions only, or a manifest without a version column).
    pub version_id: Option<String>,
    pub is_latest: Option<bool>,
    pub is_delete_marker: Option<bool>,
    pub size: Option<u64>,
    /// LastModifiedDate in milliseconds since 1970 (only the order matters).
    pub last_modified: Option<i64>,
    /// None for STANDARD, the class a copy gets anyway. (The ETag column is not kept: copies check the
    /// source's ETag by HeadObject where they need it.)
    pub storage_class: Option<String>,
}

impl Row {
    /// Bytes this row holds on the heap and in place, for the sort's memory budget.
    pub fn footprint(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        std::mem::size_of::<Row>()
            + self.key.capacity()
            + text(&self.version_id)
            + text(&self.storage_class)
    }
}

/// A problem with one row, without its place (the caller adds file and line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError(pub String);

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(message: impl Into<String>) -> RowError {
    RowError(message.into())
}

/// Decodes a URL-encoded key as S3 Inventory writes it: `%XX` escapes and `+` for a space.
pub fn decode_key(field: &[u8]) -> Result<String, RowError> {
    if !field.iter().any(|&b| b == b'+' || b == b'%') {
        return String::from_utf8(field.to_vec()).map_err(|_| bad("the key is not valid UTF-8"));
    }
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        match field[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let escape = field.get(i + 1..i + 3);
                match escape.and_then(|e| Some(hex(e[0])? << 4 | hex(e[1])?)) {
                    Some(byte) => out.push(byte),
                    None => {
                        let shown = String::from_utf8_lossy(&field[i..(i + 3).min(field.len())]);
                        return Err(bad(format!(
                            "bad URL escape {shown:?} in key {:?} (a % must be followed by two hex digits)",
                            String::from_utf8_lossy(field)
                        )));
                    }
                }
                i += 3;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| {
        bad(format!(
            "key {:?} does not decode to UTF-8",
            String::from_utf8_lossy(field)
        ))
    })
}

fn text(field: &[u8], column: &str) -> Result<String, RowError> {
    String::from_utf8(field.to_vec()).map_err(|_| bad(format!("column {column} is not UTF-8")))
}

/// Milliseconds since 1970 of an ISO 8601 UTC time as S3 Inventory writes it: `2024-01-02T03:04:05.000Z`
/// (the fraction is optional and may have any number of digits).
pub fn parse_time(field: &[u8]) -> Option<i64> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = field.get(range)?;
        part.iter().try_fold(0i64, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    if field.len() < 20 || field[4] != b'-' || field[7] != b'-' || field[10] != b'T' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if field[13] != b':'
        || field[16] != b':'
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
    {
        return None;
    }
    let mut millis = 0;
    let rest = &field[19..];
    let rest = match rest.first() {
        Some(b'.') => {
            let fraction = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
            if fraction == 0 {
                return None;
            }
            for (n, b) in rest[1..]
                .iter()
                .take(3)
                .enumerate()
                .filter(|(n, _)| *n < fraction)
            {
                millis += i64::from(b - b'0') * [100, 10, 1][n];
            }
            &rest[1 + fraction..]
        }
        _ => rest,
    };
    if rest != b"Z" && rest != b"+00:00" {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

fn boolean(field: &[u8], column: &str) -> Result<Option<bool>, RowError> {
    match field {
        b"true" | b"TRUE" | b"True" => Ok(Some(true)),
        b"false" | b"FALSE" | b"False" => Ok(Some(false)),
        b"" => Ok(None),
        other => Err(bad(format!(
            "column {column} is {:?}, expected true or false",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// Where each known column is in an inventory's rows, from manifest.json's `fileSchema`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub columns: usize,
    bucket: usize,
    key: usize,
    version_id: Option<usize>,
    is_latest: Option<usize>,
    is_delete_marker: Option<usize>,
    size: Option<usize>,
    last_modified: Option<usize>,
    storage_class: Option<usize>,
}

impl Schema {
    /// Parses `fileSchema` ("Bucket, Key, VersionId, IsLatest, ..."): columns in any order, unknown ones
    /// kept as placeholders. Bucket and Key are required.
    pub fn parse(file_schema: &str) -> Result<Schema, String> {
        let names: Vec<&str> = file_schema.split(',').map(str::trim).collect();
        let find = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
        let required = |name: &str| {
            find(name).ok_or_else(|| {
                format!("fileSchema {file_schema:?} has no {name} column; an inventory needs Bucket and Key")
            })
        };
        Ok(Schema {
            columns: names.len(),
            bucket: required("Bucket")?,
            key: required("Key")?,
            version_id: find("VersionId"),
            is_latest: find("IsLatest"),
            is_delete_marker: find("IsDeleteMarker"),
            size: find("Size"),
            last_modified: find("LastModifiedDate"),
            storage_class: find("StorageClass"),
        })
    }

    /// Parses one data row of `source_bucket`'s inventory.
    pub fn row(&self, record: &csv::ByteRecord, source_bucket: &str) -> Result<Row, RowError> {
        if record.len() != self.columns {
            return Err(bad(format!(
                "{} columns, but fileSchema names {}",
                record.len(),
                self.columns
            )));
        }
        let field = |i: usize| &record[i];
        let optional = |i: Option<usize>| i.map(field).filter(|f| !f.is_empty());
        check_bucket(field(self.bucket), source_bucket)?;
        let version_id = match self.version_id {
            // An inventory of all versions writes the null version as an empty VersionId.
            Some(i) if field(i).is_empty() => Some("null".to_string()),
            Some(i) => Some(text(field(i), "VersionId")?),
            None => None,
        };
        let size = match optional(self.size) {
            Some(f) => Some(
                std::str::from_utf8(f)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "column Size is {:?}, expected a number of bytes",
                            String::from_utf8_lossy(f)
                        ))
                    })?,
            ),
            None => None,
        };
        Ok(Row {
            key: decode_key(field(self.key))?,
            version_id,
            is_latest: self
                .is_latest
                .map_or(Ok(None), |i| boolean(field(i), "IsLatest"))?,
            is_delete_marker: match self.is_delete_marker {
                Some(i) => boolean(field(i), "IsDeleteMarker")?,
                // An inventory without the column lists objects only.
                None if self.version_id.is_none() => Some(false),
                None => None,
            },
            size,
            last_modified: match optional(self.last_modified) {
                Some(f) => Some(parse_time(f).ok_or_else(|| {
                    bad(format!(
                        "column LastModifiedDate is {:?}, expected a UTC time like 2024-01-02T03:04:05.000Z",
                        String::from_utf8_lossy(f)
                    ))
                })?),
                None => None,
            },
            storage_class: optional(self.storage_class)
                .filter(|f| *f != b"STANDARD")
                .map(|f| text(f, "StorageClass"))
                .transpose()?,
        })
    }
}

fn check_bucket(field: &[u8], source_bucket: &str) -> Result<(), RowError> {
    if field != source_bucket.as_bytes() {
        return Err(bad(format!(
            "the row is of bucket {:?}, not of the source bucket {source_bucket:?}",
            String::from_utf8_lossy(field)
        )));
    }
    Ok(())
}

/// Parses one row of a Batch Operations manifest: `bucket,url-encoded-key[,versionId]`, the version
/// empty or `null` for the null version.
pub fn manifest_row(record: &csv::ByteRecord, source_bucket: &str) -> Result<Row, RowError> {
    if !(2..=3).contains(&record.len()) {
        return Err(bad(format!(
            "{} columns, expected bucket,key or bucket,key,versionId",
            record.len()
        )));
    }
    check_bucket(&record[0], source_bucket)?;
    let version_id = match record.get(2) {
        None => None,
        Some(b"") | Some(b"null") => Some("null".to_string()),
        Some(v) => Some(text(v, "versionId")?),
    };
    Ok(Row {
        key: decode_key(&record[1])?,
        version_id,
        is_latest: None,
        is_delete_marker: None,
        size: None,
        last_modified: None,
        storage_class: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[&str]) -> csv::ByteRecord {
        csv::ByteRecord::from(fields.to_vec())
    }

    #[test]
    fn decodes_keys_as_s3_inventory_encodes_them() {
        // S3 Inventory form-encodes keys: a space is '+', a plus sign is %2B.
        assert_eq!(decode_key(b"dir/a+b%2Bc").unwrap(), "dir/a b+c");
        assert_eq!(decode_key(b"100%25+sure").unwrap(), "100% sure");
        assert_eq!(decode_key(b"caf%C3%A9%3F%23").unwrap(), "café?#");
        assert_eq!(decode_key(b"plain/key.txt").unwrap(), "plain/key.txt");
        let error = decode_key(b"bad%2").unwrap_err().to_string();
        assert!(error.contains("bad URL escape \"%2\""), "{error}");
        assert!(decode_key(b"bad%zz").is_err());
        assert!(decode_key(b"%FF").unwrap_err().0.contains("UTF-8"));
    }

    #[test]
    fn parses_inventory_times_into_milliseconds() {
        assert_eq!(parse_time(b"1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_time(b"1970-01-01T00:00:01Z"), Some(1000));
        assert_eq!(
            parse_time(b"2024-02-29T12:34:56.789Z"),
            Some(1_709_210_096_789)
        );
        assert_eq!(
            parse_time(b"2024-02-29T12:34:56.7Z"),
            Some(1_709_210_096_700)
        );
        assert_eq!(
            parse_time(b"2024-02-29T12:34:56.789123Z"),
            Some(1_709_210_096_789)
        );
        assert!(parse_time(b"2024-02-29T12:34:56.000Z") < parse_time(b"2024-02-29T12:34:56.001Z"));
        assert_eq!(parse_time(b"2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_time(b"yesterday"), None);
        assert_eq!(parse_time(b"2024-01-01T00:00:00.Z"), None);
    }

    #[test]
    fn manifest_encoding_round_trips_through_form_decoding() {
        // Only unreserved characters and `/` stay as they are, so a key means the same under plain
        // percent-decoding and form decoding.
        use crate::s3::manifest_key as encode_key;
        for key in ["a b+c%d#e?f é", "x/y z", "++", "%2B", "日本/語"] {
            assert_eq!(decode_key(encode_key(key).as_bytes()).unwrap(), key);
        }
    }

    #[test]
    fn schema_columns_may_come_in_any_order_with_extra_ones() {
        let schema =
            Schema::parse("Size, Key, ReplicationStatus, Bucket, IsDeleteMarker, VersionId, IsLatest, LastModifiedDate")
                .unwrap();
        let row = schema
            .row(
                &record(&[
                    "12",
                    "a+b",
                    "COMPLETED",
                    "src",
                    "false",
                    "",
                    "true",
                    "2024-01-02T03:04:05.000Z",
                ]),
                "src",
            )
            .unwrap();
        assert_eq!(row.key, "a b");
        assert_eq!(row.version_id.as_deref(), Some("null"));
        assert_eq!(row.size, Some(12));
        assert_eq!(row.is_latest, Some(true));
        assert_eq!(row.is_delete_marker, Some(false));
        assert!(
            Schema::parse("Key, Size")
                .unwrap_err()
                .contains("no Bucket column")
        );
    }

    #[test]
    fn rows_are_checked() {
        let schema = Schema::parse("Bucket, Key, VersionId, IsDeleteMarker, Size").unwrap();
        let error = |fields: &[&str]| schema.row(&record(fields), "src").unwrap_err().0;
        assert!(error(&["src", "k", "v"]).contains("3 columns, but fileSchema names 5"));
        assert!(error(&["other", "k", "v", "false", "1"]).contains("bucket \"other\""));
        assert!(error(&["src", "k", "v", "maybe", "1"]).contains("IsDeleteMarker"));
        assert!(error(&["src", "k", "v", "false", "1x"]).contains("Size"));
        let marker = schema
            .row(&record(&["src", "k", "v", "true", ""]), "src")
            .unwrap();
        assert_eq!((marker.is_delete_marker, marker.size), (Some(true), None));
    }

    #[test]
    fn manifest_rows_name_versions_or_the_current_one() {
        let row = manifest_row(&record(&["src", "a%20b", "v1"]), "src").unwrap();
        assert_eq!(
            (row.key.as_str(), row.version_id.as_deref()),
            ("a b", Some("v1"))
        );
        let null = manifest_row(&record(&["src", "k", "null"]), "src").unwrap();
        assert_eq!(null.version_id.as_deref(), Some("null"));
        let empty = manifest_row(&record(&["src", "k", ""]), "src").unwrap();
        assert_eq!(empty.version_id.as_deref(), Some("null"));
        let current = manifest_row(&record(&["src", "k"]), "src").unwrap();
        assert_eq!(current.version_id, None);
        assert!(
            manifest_row(&record(&["src"]), "src")
                .unwrap_err()
                .0
                .contains("1 columns")
        );
        assert!(manifest_row(&record(&["dst", "k"]), "src").is_err());
    }
}
