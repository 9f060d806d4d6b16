//! Call costs in integer micro-dollars: SMS segment counting (without keeping the body),
//! Twilio and AI token pricing, and the `CallCost` sent to the shop's monitor. Prices are
//! inputs (configuration), not constants here; projections live in the monitor.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::external::Service;

/// An amount of money in micro-dollars (1 USD = 1 000 000).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cost(u64);

/// Why a cost could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostError {
    /// The result does not fit in `u64` micro-dollars (about 18 trillion dollars): the
    /// counts or prices fed in are not real ones.
    Overflow,
}

impl fmt::Display for CostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CostError::Overflow => f.write_str("cost overflows u64 micro-dollars"),
        }
    }
}

impl std::error::Error for CostError {}

impl Cost {
    pub const ZERO: Cost = Cost(0);

    pub const fn from_micros(micros: u64) -> Self {
        Cost(micros)
    }

    pub const fn micros(self) -> u64 {
        self.0
    }

    pub fn checked_add(self, other: Cost) -> Result<Cost, CostError> {
        self.0.checked_add(other.0).map(Cost).ok_or(CostError::Overflow)
    }

    /// For running totals that must not fail (a monitor's sum): stops at `u64::MAX`.
    pub fn saturating_add(self, other: Cost) -> Cost {
        Cost(self.0.saturating_add(other.0))
    }

    pub fn checked_mul(self, n: u64) -> Result<Cost, CostError> {
        self.0.checked_mul(n).map(Cost).ok_or(CostError::Overflow)
    }

    /// For display only; arithmetic stays in integers.
    pub fn dollars_f64(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }
}

impl fmt::Display for Cost {
    /// `$0.007900`: dollars with all six decimals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// The cost of one external call, as it travels to the shop's monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCost {
    pub service: Service,
    pub micros: u64,
}

impl CallCost {
    pub fn new(service: Service, cost: Cost) -> Self {
        CallCost { service, micros: cost.micros() }
    }

    pub fn cost(&self) -> Cost {
        Cost(self.micros)
    }
}

/// How an SMS body is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsEncoding {
    /// GSM 03.38 7-bit alphabet: 160 septets in one segment, 153 per part when concatenated.
    Gsm7,
    /// UCS-2 (UTF-16): 70 code units in one segment, 67 per part when concatenated.
    Ucs2,
}

impl SmsEncoding {
    /// Units that fit a message sent as one segment.
    pub const fn single_units(self) -> u32 {
        match self {
            SmsEncoding::Gsm7 => 160,
            SmsEncoding::Ucs2 => 70,
        }
    }

    /// Units per part of a concatenated message (the rest carries the reassembly header).
    pub const fn part_units(self) -> u32 {
        match self {
            SmsEncoding::Gsm7 => 153,
            SmsEncoding::Ucs2 => 67,
        }
    }
}

/// The shape of an SMS for billing: nothing of its text is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsSegments {
    pub encoding: SmsEncoding,
    /// Septets (GSM-7, extension characters count 2) or UTF-16 code units (UCS-2).
    pub units: u32,
    pub segments: u32,
}

/// GSM 03.38 basic character set (one septet each).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// GSM 03.38 extension table (escape + char: two septets each).
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{c}";

fn gsm7_units(c: char) -> Option<u32> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Count the segments `body` is billed as. GSM-7 when every character is in the GSM
/// alphabet, else UCS-2. A character is never split across parts (an escape pair or a
/// surrogate pair moves whole to the next part, as carriers do). A sent message is billed at
/// least one segment, so an empty body counts 1.
pub fn sms_segments(body: &str) -> SmsSegments {
    let gsm: Option<Vec<u32>> = body.chars().map(gsm7_units).collect();
    let (encoding, costs): (SmsEncoding, Vec<u32>) = match gsm {
        Some(costs) => (SmsEncoding::Gsm7, costs),
        None => (SmsEncoding::Ucs2, body.chars().map(|c| c.len_utf16() as u32).collect()),
    };
    let units = costs.iter().fold(0u32, |a, c| a.saturating_add(*c));
    let segments = if units <= encoding.single_units() {
        1
    } else {
        let per_part = encoding.part_units();
        let (mut parts, mut used) = (1u32, 0u32);
        for c in costs {
            if used + c > per_part {
                parts = parts.saturating_add(1);
                used = c;
            } else {
                used += c;
            }
        }
        parts
    };
    SmsSegments { encoding, units, segments }
}

/// Segments for a message of `units` units with no multi-unit characters (the plain formula:
/// one segment up to the single limit, else `ceil(units / part_units)`).
pub fn segments_for_units(units: u32, encoding: SmsEncoding) -> u32 {
    if units <= encoding.single_units() {
        1
    } else {
        units.div_ceil(encoding.part_units())
    }
}

/// Twilio SMS: `segments x price per segment`.
pub fn twilio_sms_cost(segments: u32, price_per_segment_micros: u64) -> Result<Cost, CostError> {
    Cost(price_per_segment_micros).checked_mul(u64::from(segments))
}

/// An AI model's prices, in micro-dollars per million tokens (Claude Sonnet at $3 / $15 per
/// MTok is `3_000_000` / `15_000_000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiPrice {
    pub input_per_mtok_micros: u64,
    pub output_per_mtok_micros: u64,
}

/// AI call: `input tokens x input price + output tokens x output price`, rounded to the
/// nearest micro-dollar (half up) once, on the total.
pub fn ai_cost(input_tokens: u64, output_tokens: u64, price: AiPrice) -> Result<Cost, CostError> {
    let input = u128::from(input_tokens) * u128::from(price.input_per_mtok_micros);
    let output = u128::from(output_tokens) * u128::from(price.output_per_mtok_micros);
    let total = input.checked_add(output).ok_or(CostError::Overflow)?;
    let micros = total / 1_000_000 + u128::from(total % 1_000_000 >= 500_000);
    u64::try_from(micros).map(Cost).map_err(|_| CostError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_segment_boundaries() {
        assert_eq!(
            sms_segments(&"a".repeat(160)),
            SmsSegments { encoding: SmsEncoding::Gsm7, units: 160, segments: 1 }
        );
        assert_eq!(sms_segments(&"a".repeat(161)).segments, 2);
        assert_eq!(sms_segments(&"a".repeat(306)).segments, 2);
        assert_eq!(sms_segments(&"a".repeat(307)).segments, 3);
        assert_eq!(segments_for_units(160, SmsEncoding::Gsm7), 1);
        assert_eq!(segments_for_units(161, SmsEncoding::Gsm7), 2);
        assert_eq!(segments_for_units(459, SmsEncoding::Gsm7), 3);
        assert_eq!(segments_for_units(460, SmsEncoding::Gsm7), 4);
    }

    #[test]
    fn ucs2_segment_boundaries() {
        assert_eq!(sms_segments(&"ж".repeat(70)), SmsSegments { encoding: SmsEncoding::Ucs2, units: 70, segments: 1 });
        assert_eq!(sms_segments(&"ж".repeat(71)).segments, 2);
        assert_eq!(sms_segments(&"ж".repeat(134)).segments, 2);
        assert_eq!(sms_segments(&"ж".repeat(135)).segments, 3);
        assert_eq!(segments_for_units(70, SmsEncoding::Ucs2), 1);
        assert_eq!(segments_for_units(71, SmsEncoding::Ucs2), 2);
    }

    #[test]
    fn one_non_gsm_character_switches_to_ucs2() {
        let body = format!("{}🙂", "a".repeat(60));
        let s = sms_segments(&body);
        assert_eq!(s.encoding, SmsEncoding::Ucs2);
        assert_eq!(s.units, 62, "an emoji is two UTF-16 units");
        assert_eq!(s.segments, 1);
        assert_eq!(sms_segments(&format!("{}🙂", "a".repeat(69))).segments, 2);
    }

    #[test]
    fn gsm_extension_characters_count_twice_and_are_not_split() {
        let s = sms_segments(&"€".repeat(80));
        assert_eq!((s.encoding, s.units, s.segments), (SmsEncoding::Gsm7, 160, 1));
        // 306 units would fill two parts exactly, but the escape pair cannot straddle the
        // first part's boundary at 153, so the message needs a third part.
        let s = sms_segments(&format!("{}€{}", "a".repeat(152), "a".repeat(152)));
        assert_eq!(s.units, 306);
        assert_eq!(segments_for_units(306, SmsEncoding::Gsm7), 2);
        assert_eq!(s.segments, 3);
        assert_eq!(sms_segments("").segments, 1);
    }

    #[test]
    fn twilio_cost_is_segments_times_price() {
        let seg = sms_segments(&"a".repeat(161)).segments;
        assert_eq!(twilio_sms_cost(seg, 7_900), Ok(Cost::from_micros(15_800)));
        assert_eq!(twilio_sms_cost(0, 7_900), Ok(Cost::ZERO));
        assert_eq!(twilio_sms_cost(u32::MAX, u64::MAX), Err(CostError::Overflow));
    }

    #[test]
    fn ai_cost_prices_tokens_per_million() {
        let sonnet = AiPrice { input_per_mtok_micros: 3_000_000, output_per_mtok_micros: 15_000_000 };
        // 1 200 in x $3/MTok + 350 out x $15/MTok = $0.0036 + $0.00525.
        assert_eq!(ai_cost(1_200, 350, sonnet), Ok(Cost::from_micros(8_850)));
        assert_eq!(ai_cost(1_000_000, 1_000_000, sonnet), Ok(Cost::from_micros(18_000_000)));
        let haiku = AiPrice { input_per_mtok_micros: 800_000, output_per_mtok_micros: 4_000_000 };
        // 1 token x 0.8 micro-dollars rounds to 1; rounding happens once, on the total.
        assert_eq!(ai_cost(1, 0, haiku), Ok(Cost::from_micros(1)));
        assert_eq!(ai_cost(5, 0, haiku), Ok(Cost::from_micros(4)));
        assert_eq!(ai_cost(0, 0, haiku), Ok(Cost::ZERO));
        assert_eq!(
            ai_cost(u64::MAX, u64::MAX, AiPrice { input_per_mtok_micros: u64::MAX, output_per_mtok_micros: u64::MAX }),
            Err(CostError::Overflow)
        );
    }

    #[test]
    fn cost_arithmetic_and_display() {
        let a = Cost::from_micros(7_900);
        assert_eq!(a.checked_add(Cost::from_micros(100)), Ok(Cost::from_micros(8_000)));
        assert_eq!(Cost::from_micros(u64::MAX).checked_add(a), Err(CostError::Overflow));
        assert_eq!(Cost::from_micros(u64::MAX).saturating_add(a).micros(), u64::MAX);
        assert_eq!(a.checked_mul(3), Ok(Cost::from_micros(23_700)));
        assert_eq!(a.to_string(), "$0.007900");
        assert_eq!(Cost::from_micros(12_345_678).to_string(), "$12.345678");
    }

    #[test]
    fn call_cost_serializes_for_the_monitor() {
        let c = CallCost::new(Service::Twilio, Cost::from_micros(15_800));
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json, serde_json::json!({"service": "twilio", "micros": 15800}));
        let back: CallCost = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.cost().micros(), 15_800);
    }
}
