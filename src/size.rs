//! Byte sizes on the command line: `8MiB`, `1.5GiB`, `1048576`, `100MB`.

/// Parses a size; binary units (KiB, MiB, GiB, TiB) and decimal ones (KB, MB, GB, TB) are both accepted.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let invalid = || {
        format!(
            "invalid size {text:?}: write a number with an optional unit, like 8MiB, 1.5GiB or 1048576"
        )
    };
    // Whole and fractional parts apart, so 1.5GiB is exactly 1536 MiB.
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') || fraction.len() > 9 {
        return Err(invalid());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| invalid())?
    };
    let fraction_value: u64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| invalid())?
    };
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "invalid size {text:?}: unknown unit {other:?}; use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB"
            ));
        }
    };
    let scale = 10u128.pow(fraction.len() as u32);
    let fractional_bytes = u128::from(fraction_value) * u128::from(multiplier);
    if fractional_bytes % scale != 0 {
        return Err(format!(
            "invalid size {text:?}: not a whole number of bytes; give it in a smaller unit"
        ));
    }
    whole
        .checked_mul(multiplier)
        .and_then(|bytes| bytes.checked_add((fractional_bytes / scale) as u64))
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// Formats bytes for people: `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("5GiB"), Ok(5 << 30));
        assert_eq!(parse_size("5gib"), Ok(5 << 30));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("0.5MiB"), Ok(1 << 19));
        assert_eq!(parse_size("2.5MB"), Ok(2_500_000));
        assert!(
            parse_size("1.3B")
                .unwrap_err()
                .contains("whole number of bytes")
        );
        assert!(parse_size("1..5GiB").is_err());
        assert!(parse_size(".").is_err());
        assert_eq!(parse_size("7 KiB"), Ok(7 << 10));
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        assert!(parse_size("").unwrap_err().contains("write a number"));
        assert!(parse_size("MiB").unwrap_err().contains("write a number"));
        assert!(
            parse_size("1.5.2GiB")
                .unwrap_err()
                .contains("write a number")
        );
        assert!(
            parse_size("3 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(
            parse_size("99999999999TiB")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}
