//! Rounding to two decimals, in the JSON layer only (the core keeps full precision).

use serde::Serialize;
use serde_json::value::RawValue;

/// `x` rounded half away from zero to two decimals.
pub fn round2(x: f64) -> f64 {
    round_to(x, 2)
}

/// `x` rounded half away from zero to `places` decimals (0 for NaN and infinities).
pub fn round_to(x: f64, places: i32) -> f64 {
    if !x.is_finite() {
        return 0.0;
    }
    let scale = 10f64.powi(places);
    let r = (x * scale).round() / scale;
    if r == 0.0 { 0.0 } else { r }
}

/// A number rounded to two decimals, written without trailing zeros (`27351`, `29.99`, `0.7`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rounded(pub f64);

impl Serialize for Rounded {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = round2(self.0);
        if r.fract() == 0.0 && r.abs() < 9e15 {
            s.serialize_i64(r as i64)
        } else {
            s.serialize_f64(r)
        }
    }
}

/// A number written with exactly two decimals (`22150.00`), as `revenueBreakdown` shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fixed2(pub f64);

impl Serialize for Fixed2 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = format!("{:.2}", round2(self.0));
        let raw = RawValue::from_string(text).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_the_documentation_shows() {
        assert_eq!(serde_json::to_string(&Rounded(27351.0)).unwrap(), "27351");
        assert_eq!(serde_json::to_string(&Rounded(1.92441)).unwrap(), "1.92");
        assert_eq!(serde_json::to_string(&Rounded(0.699999)).unwrap(), "0.7");
        assert_eq!(serde_json::to_string(&Fixed2(22150.0)).unwrap(), "22150.00");
        assert_eq!(serde_json::to_string(&Fixed2(0.0)).unwrap(), "0.00");
        assert_eq!(serde_json::to_string(&Fixed2(-0.001)).unwrap(), "0.00");
        assert_eq!(round2(f64::NAN), 0.0);
    }
}
