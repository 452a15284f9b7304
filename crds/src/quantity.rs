//! Byte sizes written as Kubernetes quantities (`1Mi`, `512Ki`, `10M`, `1500`), as used by
//! `spec.bodyLimit`. The API server validates the syntax with CEL `isQuantity`; this turns
//! the common forms into bytes.

/// Parses a non-negative quantity into bytes, rounding fractions up; `None` if it does not
/// parse or overflows.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return None;
    }
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let whole: u64 = whole.parse().ok()?;
    let mut bytes = whole.checked_mul(multiplier)?;
    if !frac.is_empty() {
        let digits = u32::try_from(frac.len()).ok()?;
        let scale = 10u64.checked_pow(digits)?;
        let frac: u64 = frac.parse().ok()?;
        bytes = bytes.checked_add((frac.checked_mul(multiplier)?).div_ceil(scale))?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn parses_common_quantities() {
        assert_eq!(parse_bytes("1Mi"), Some(1_048_576));
        assert_eq!(parse_bytes("512Ki"), Some(524_288));
        assert_eq!(parse_bytes("10M"), Some(10_000_000));
        assert_eq!(parse_bytes("1500"), Some(1500));
        assert_eq!(parse_bytes("1.5Ki"), Some(1536));
        assert_eq!(parse_bytes("0.5"), Some(1));
        assert_eq!(parse_bytes("4Gi"), Some(4 << 30));
    }

    #[test]
    fn refuses_what_is_not_a_size() {
        for bad in [
            "",
            "Mi",
            "1mb",
            "-1",
            "1.2.3",
            ".5",
            "1.",
            "1 Mi",
            "99999999999999999999Ti",
        ] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }
}
