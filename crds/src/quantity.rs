//! Byte sizes written as Kubernetes quantities (`1Mi`, `512Ki`, `10M`, `1500`), as used by
//! `spec.bodyLimit`. One grammar, in two spellings kept side by side here: the CRD's CEL
//! rule [`BYTES_RULE`] (so the API server refuses what the gateway could not honour:
//! `1e3`, `1500m`, `1Pi` are quantities but not byte sizes here) and [`parse_bytes`].

/// The CRD's rule for a byte size: digits, an optional fraction, an optional decimal or
/// binary suffix up to T/Ti, greater than zero. Exactly what [`parse_bytes`] accepts.
pub const BYTES_RULE: &str = "self.matches('^[0-9]+(\\\\.[0-9]+)?(k|M|G|T|Ki|Mi|Gi|Ti)?$') && quantity(self).isGreaterThan(quantity('0'))";

/// Parses a byte size of the [`BYTES_RULE`] grammar into bytes, rounding fractions up and
/// saturating at `u64::MAX` (a limit that large is no limit); `None` if it does not parse.
pub fn parse_bytes(text: &str) -> Option<u64> {
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
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits only from here: a parse fails only by overflowing, which saturates.
    let whole: u64 = whole.parse().unwrap_or(u64::MAX);
    let mut bytes = whole.saturating_mul(multiplier);
    if !frac.is_empty() {
        // 18 digits keep the product within u128; what lies beyond only rounds up.
        let (kept, beyond) = frac.split_at(frac.len().min(18));
        let scale = 10u128.pow(u32::try_from(kept.len()).unwrap_or(18));
        let scaled = kept.parse::<u128>().unwrap_or(0) * u128::from(multiplier);
        let part = if beyond.bytes().any(|b| b != b'0') {
            scaled / scale + 1
        } else {
            scaled.div_ceil(scale)
        };
        bytes = bytes.saturating_add(u64::try_from(part).unwrap_or(u64::MAX));
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
    fn saturates_and_rounds_up() {
        assert_eq!(parse_bytes("99999999999999999999Ti"), Some(u64::MAX));
        assert_eq!(parse_bytes("0.0000000000000000001"), Some(1));
        assert_eq!(parse_bytes("0.5Ki"), Some(512));
        assert_eq!(parse_bytes("1.0000000000000000000000"), Some(1));
    }

    #[test]
    fn refuses_what_is_not_a_size() {
        for bad in [
            "", "Mi", "1mb", "-1", "1.2.3", ".5", "1.", "1 Mi", " 1Mi", "1e3", "1500m", "1Pi",
            "+1Mi", "0x10",
        ] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }
}
