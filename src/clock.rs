//! Wall-clock time as the reports and logs print it (RFC 3339, UTC, seconds), and RFC 3339 times as
//! users give them (`--as-of`, `batch --from`/`--until`), parsed by the `time` crate: offsets checked,
//! never a panic on any input.

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `unix` seconds as `2026-12-01T18:20:11Z` (the civil-from-days algorithm of H. Hinnant's "chrono-
/// Compatible Low-Level Date Algorithms").
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let seconds = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// Milliseconds since the Unix epoch of an RFC 3339 time (`2026-11-30T00:00:00Z`,
/// `2026-11-30T01:00:00.250+01:00`); any offset, within ±23:59, is applied.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|error| {
            format!(
                "{text:?} is not an RFC 3339 time ({error}); write e.g. 2026-11-30T00:00:00Z or \
                 2026-11-30T01:00:00+01:00"
            )
        })?;
    i64::try_from(parsed.unix_timestamp_nanos().div_euclid(1_000_000))
        .map_err(|_| format!("{text:?} is too far from today"))
}

/// Now as RFC 3339.
pub fn now_rfc3339() -> String {
    rfc3339(now_unix())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    #[test]
    fn rfc_3339_times_are_parsed_with_their_offsets_checked() {
        assert_eq!(super::parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            super::parse_rfc3339("1970-01-01T01:00:00.250+01:00"),
            Ok(250)
        );
        assert_eq!(super::parse_rfc3339("1969-12-31T23:59:59.999Z"), Ok(-1));
        for bad in [
            "2026-12-07T10:00:00+99:99",
            "2026-12-07T10:00:00+24:00",
            "Téaaaaa",
            "2026-02-30T00:00:00Z",
            "2026-11-30",
            "2026-11-30 00:00:00",
            "yesterday",
            "",
        ] {
            let error = super::parse_rfc3339(bad).unwrap_err();
            assert!(error.contains("RFC 3339"), "{bad}: {error}");
        }
    }

    proptest! {
        /// Any text: a time or an error, never a panic.
        #[test]
        fn any_text_is_a_time_or_an_error(text in any::<String>()) {
            let _ = super::parse_rfc3339(&text);
        }

        /// Every time written in RFC 3339 reads back as itself, whatever its offset.
        #[test]
        fn printed_times_read_back(seconds in 0u64..8_000_000_000, offset in -1439i32..1440) {
            let utc = super::rfc3339(seconds);
            prop_assert_eq!(super::parse_rfc3339(&utc), Ok(seconds as i64 * 1000));
            let at = time::OffsetDateTime::from_unix_timestamp(seconds as i64)
                .unwrap()
                .to_offset(time::UtcOffset::from_whole_seconds(offset * 60).unwrap());
            let text = at.format(&time::format_description::well_known::Rfc3339).unwrap();
            prop_assert_eq!(super::parse_rfc3339(&text), Ok(seconds as i64 * 1000));
        }
    }

    #[test]
    fn dates_print_as_rfc_3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_796_150_411), "2026-12-01T18:40:11Z");
        assert_eq!(super::rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
