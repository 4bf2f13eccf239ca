//! Parses a ListObjectVersions response body ourselves, because the order of the XML is the only
//! reliable order of a key's history: the SDK splits versions and delete markers into two lists, which
//! loses their interleaving whenever LastModified ties (whole seconds on some servers).

use quick_xml::Reader;
use quick_xml::events::Event;

use super::api::{Entry, EntryKind, ListPage};

#[derive(Debug, thiserror::Error)]
#[error("malformed ListObjectVersions response: {0}")]
pub struct ListXmlError(String);

fn fail(message: impl std::fmt::Display) -> ListXmlError {
    ListXmlError(message.to_string())
}

/// Parses one page. Keys are URL-decoded when the server says `<EncodingType>url</EncodingType>` (we ask for
/// it so that keys with characters XML 1.0 cannot carry survive; servers that ignore it send plain keys).
pub fn parse_list_versions(body: &str) -> Result<ListPage, ListXmlError> {
    let mut reader = Reader::from_str(body);
    let mut entries = Vec::new();
    let mut common_prefixes = Vec::new();
    let mut truncated = false;
    let mut next_key = None;
    let mut next_version = None;
    let mut url_encoded = false;
    loop {
        match reader.read_event().map_err(fail)? {
            Event::Start(start) => {
                let name = start.name();
                match name.as_ref() {
                    "ListVersionsResult" => {}
                    "Version" | "DeleteMarker" => {
                        let delete_marker = name.as_ref() == "DeleteMarker";
                        entries.push(parse_entry(&mut reader, delete_marker)?);
                    }
                    "CommonPrefixes" => {
                        // <CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes>
                        loop {
                            match reader.read_event().map_err(fail)? {
                                Event::Start(inner) if inner.name().as_ref() == "Prefix" => {
                                    common_prefixes.push(read_leaf(&mut reader, inner.name())?);
                                }
                                Event::End(end) if end.name().as_ref() == "CommonPrefixes" => break,
                                Event::Eof => {
                                    return Err(fail("the document ends inside CommonPrefixes"));
                                }
                                _ => {}
                            }
                        }
                    }
                    "IsTruncated" => truncated = read_leaf(&mut reader, name)? == "true",
                    "NextKeyMarker" => next_key = Some(read_leaf(&mut reader, name)?),
                    "NextVersionIdMarker" => next_version = Some(read_leaf(&mut reader, name)?),
                    "EncodingType" => url_encoded = read_leaf(&mut reader, name)? == "url",
                    _ => {
                        reader.read_to_end(name).map_err(fail)?;
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if url_encoded {
        for entry in &mut entries {
            entry.key = url_decode(&entry.key)?;
        }
        if let Some(key) = next_key.as_mut() {
            *key = url_decode(key)?;
        }
        for prefix in &mut common_prefixes {
            *prefix = url_decode(prefix)?;
        }
    }
    let next = match (truncated, next_key) {
        (false, _) => None,
        (true, Some(key)) => Some((key, next_version.unwrap_or_default())),
        (true, None) => return Err(fail("IsTruncated is true but NextKeyMarker is missing")),
    };
    Ok(ListPage {
        entries,
        common_prefixes,
        next,
    })
}

fn read_leaf(
    reader: &mut Reader<&[u8]>,
    name: quick_xml::name::QName,
) -> Result<String, ListXmlError> {
    let raw = reader.read_text(name).map_err(fail)?.into_inner();
    Ok(quick_xml::escape::unescape(&raw)
        .map_err(fail)?
        .into_owned())
}

fn parse_entry(reader: &mut Reader<&[u8]>, delete_marker: bool) -> Result<Entry, ListXmlError> {
    let mut key = None;
    let mut version_id = None;
    let mut is_latest = false;
    let mut last_modified = String::new();
    let mut etag = String::new();
    let mut size = 0u64;
    let mut storage_class = None;
    loop {
        match reader.read_event().map_err(fail)? {
            Event::Start(start) => {
                let name = start.name();
                match name.as_ref() {
                    "Key" => key = Some(read_leaf(reader, name)?),
                    "VersionId" => version_id = Some(read_leaf(reader, name)?),
                    "IsLatest" => is_latest = read_leaf(reader, name)? == "true",
                    "LastModified" => last_modified = read_leaf(reader, name)?,
                    "ETag" => etag = read_leaf(reader, name)?,
                    "Size" => {
                        let text = read_leaf(reader, name)?;
                        size = text
                            .parse()
                            .map_err(|_| fail(format!("Size {text:?} is not a number")))?;
                    }
                    "StorageClass" => storage_class = Some(read_leaf(reader, name)?),
                    _ => {
                        reader.read_to_end(name).map_err(fail)?;
                    }
                }
            }
            Event::Empty(empty) if empty.name().as_ref() == "Key" => key = Some(String::new()),
            Event::End(_) => break,
            Event::Eof => return Err(fail("the document ends inside an entry")),
            _ => {}
        }
    }
    let key = key.ok_or_else(|| fail("an entry has no Key"))?;
    let version_id = version_id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| "null".to_string());
    let kind = if delete_marker {
        EntryKind::DeleteMarker
    } else {
        EntryKind::Object {
            size,
            etag,
            storage_class,
        }
    };
    Ok(Entry {
        key,
        version_id,
        is_latest,
        last_modified,
        kind,
    })
}

/// Decodes S3's `encoding-type=url` form: percent escapes, with `+` standing for a space
/// (as botocore's `unquote_plus` reads it).
pub fn url_decode(text: &str) -> Result<String, ListXmlError> {
    let plus_as_space = text.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| fail(format!("key {text:?} is not valid UTF-8 once URL-decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shape copied from a SeaweedFS 4.48 answer: put, delete, put, delete of `k` within one second.
    const TIED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>tst1</Name><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>
<DeleteMarker><Key>k</Key><VersionId>d2</VersionId><IsLatest>true</IsLatest><Owner><ID>anonymous</ID><DisplayName>anonymous</DisplayName></Owner><LastModified>2026-11-24T23:29:36Z</LastModified></DeleteMarker>
<Version><Key>k</Key><VersionId>v2</VersionId><IsLatest>false</IsLatest><ETag>&#34;60b725f10c9c85c70d97880dfe8191b3&#34;</ETag><Size>2</Size><Owner><ID>admin</ID></Owner><StorageClass>STANDARD</StorageClass><LastModified>2026-11-24T23:29:36Z</LastModified></Version>
<NextKeyMarker>k</NextKeyMarker><NextVersionIdMarker>v2</NextVersionIdMarker></ListVersionsResult>"#;

    #[test]
    fn keeps_the_interleaved_order_of_versions_and_delete_markers() {
        let page = parse_list_versions(TIED).unwrap();
        let ids: Vec<_> = page.entries.iter().map(|e| e.version_id.as_str()).collect();
        assert_eq!(ids, ["d2", "v2"]);
        assert!(page.entries[0].is_delete_marker());
        assert!(page.entries[0].is_latest);
        assert_eq!(
            page.entries[1].kind,
            EntryKind::Object {
                size: 2,
                etag: "\"60b725f10c9c85c70d97880dfe8191b3\"".into(),
                storage_class: Some("STANDARD".into())
            }
        );
        assert_eq!(page.next, Some(("k".into(), "v2".into())));
    }

    #[test]
    fn decodes_url_encoded_keys_only_when_the_server_encoded_them() {
        let encoded = "<ListVersionsResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>\
            <Version><Key>a+b%2Bc%25%23%3F%C3%A9</Key><VersionId>null</VersionId><Size>0</Size></Version></ListVersionsResult>";
        let page = parse_list_versions(encoded).unwrap();
        assert_eq!(page.entries[0].key, "a b+c%#?é");
        assert_eq!(page.entries[0].version_id, "null");
        assert!(page.next.is_none());

        let plain = "<ListVersionsResult><IsTruncated>false</IsTruncated>\
            <Version><Key>a+b%2B &amp; &lt;</Key><VersionId>1</VersionId><Size>0</Size></Version></ListVersionsResult>";
        assert_eq!(
            parse_list_versions(plain).unwrap().entries[0].key,
            "a+b%2B & <"
        );
    }

    #[test]
    fn parses_a_real_seaweedfs_page() {
        let page = parse_list_versions(include_str!("../../fixtures/list-versions-seaweedfs.xml"))
            .unwrap();
        let markers = page.entries.iter().filter(|e| e.is_delete_marker()).count();
        assert_eq!((page.entries.len() - markers, markers), (695, 58));
        assert!(
            page.entries
                .iter()
                .all(|e| e.key.starts_with("logs/2024/") && e.key.ends_with("+x.json"))
        );
        assert!(page.next.is_none());
    }

    #[test]
    fn rejects_a_truncated_page_without_a_marker() {
        let body = "<ListVersionsResult><IsTruncated>true</IsTruncated></ListVersionsResult>";
        assert!(parse_list_versions(body).is_err());
        assert!(parse_list_versions("<ListVersionsResult><Version><Key>x</Key>").is_err());
    }
}
