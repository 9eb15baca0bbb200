//! Exact decimal numbers for prices, quantities and money: a signed 64-bit integer count of
//! 10⁻⁸ units (eight decimal places). No binary floating point anywhere.
//!
//! Parsing is exact (more than eight decimals is an error, never a rounding); addition and
//! subtraction are exact and checked; multiplication goes through `i128` and rounds half to
//! even at the eighth decimal, which only happens for money products (price × qty × multiplier),
//! never for prices or quantities themselves. `Price`, `Qty` and `Money` are distinct types so a
//! quantity cannot be passed where a price is expected.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Units per 1.0.
pub const SCALE: i64 = 100_000_000;
/// Decimal places held.
pub const DECIMALS: u32 = 8;

/// Why a text is not a decimal number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FixedError {
    #[error("{0:?} is not a decimal number")]
    Malformed(String),
    #[error("{0:?} has more than 8 decimal places")]
    TooPrecise(String),
    #[error("{0:?} is out of range")]
    OutOfRange(String),
}

/// An exact decimal with eight places.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fixed(i64);

impl Fixed {
    pub const ZERO: Fixed = Fixed(0);
    pub const ONE: Fixed = Fixed(SCALE);

    pub const fn from_raw(raw: i64) -> Fixed {
        Fixed(raw)
    }

    pub const fn raw(self) -> i64 {
        self.0
    }

    pub fn from_int(n: i64) -> Option<Fixed> {
        n.checked_mul(SCALE).map(Fixed)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn abs(self) -> Fixed {
        Fixed(self.0.saturating_abs())
    }

    pub fn negate(self) -> Fixed {
        Fixed(self.0.saturating_neg())
    }

    pub fn signum(self) -> i64 {
        self.0.signum()
    }

    pub fn checked_add(self, o: Fixed) -> Option<Fixed> {
        self.0.checked_add(o.0).map(Fixed)
    }

    pub fn checked_sub(self, o: Fixed) -> Option<Fixed> {
        self.0.checked_sub(o.0).map(Fixed)
    }

    pub fn saturating_add(self, o: Fixed) -> Fixed {
        Fixed(self.0.saturating_add(o.0))
    }

    pub fn saturating_sub(self, o: Fixed) -> Fixed {
        Fixed(self.0.saturating_sub(o.0))
    }

    /// `self × o`, rounded half to even at the eighth decimal; `None` on overflow.
    pub fn checked_mul(self, o: Fixed) -> Option<Fixed> {
        let wide = self.0 as i128 * o.0 as i128;
        i64::try_from(div_round_half_even(wide, SCALE as i128))
            .ok()
            .map(Fixed)
    }

    /// `self × a × b` with one rounding at the end (price × qty × multiplier).
    pub fn checked_mul3(self, a: Fixed, b: Fixed) -> Option<Fixed> {
        let wide = (self.0 as i128)
            .checked_mul(a.0 as i128)?
            .checked_mul(b.0 as i128)?;
        i64::try_from(div_round_half_even(wide, (SCALE as i128) * (SCALE as i128)))
            .ok()
            .map(Fixed)
    }

    /// `self ÷ o`, rounded half to even at the eighth decimal; `None` when `o` is zero or on overflow.
    pub fn checked_div(self, o: Fixed) -> Option<Fixed> {
        if o.0 == 0 {
            return None;
        }
        let wide = (self.0 as i128).checked_mul(SCALE as i128)?;
        i64::try_from(div_round_half_even(wide, o.0 as i128))
            .ok()
            .map(Fixed)
    }

    /// Whether `self` is a whole multiple of `step` (a zero step accepts everything).
    pub fn is_multiple_of(self, step: Fixed) -> bool {
        step.0 == 0 || self.0 % step.0 == 0
    }

    /// Round to the nearest multiple of `step` (ties toward +∞); zero step: unchanged.
    pub fn round_to(self, step: Fixed) -> Fixed {
        if step.0 == 0 {
            return self;
        }
        let s = step.0.abs();
        let r = self.0.rem_euclid(s);
        let down = self.0 - r;
        if r * 2 >= s {
            Fixed(down.saturating_add(s))
        } else {
            Fixed(down)
        }
    }

    pub fn min(self, o: Fixed) -> Fixed {
        if self <= o {
            self
        } else {
            o
        }
    }

    pub fn max(self, o: Fixed) -> Fixed {
        if self >= o {
            self
        } else {
            o
        }
    }

    /// Parse decimal text exactly: an optional `-`, digits, an optional point and up to 8
    /// decimals. Nothing else: no spaces, no `+`, no exponent (`1e3`), so a JSON number (read
    /// from its text) and a JSON string follow one rule.
    pub fn parse(text: &str) -> Result<Fixed, FixedError> {
        let malformed = || FixedError::Malformed(text.to_string());
        let (neg, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(malformed());
        }
        let frac_trimmed = frac.trim_end_matches('0');
        if frac_trimmed.len() > DECIMALS as usize {
            return Err(FixedError::TooPrecise(text.to_string()));
        }
        let out_of_range = || FixedError::OutOfRange(text.to_string());
        let int_val: i64 = if int.is_empty() {
            0
        } else {
            int.parse::<i64>().map_err(|_| out_of_range())?
        };
        let mut frac_val: i64 = 0;
        for (i, b) in frac_trimmed.bytes().enumerate() {
            frac_val += (b - b'0') as i64 * 10i64.pow(DECIMALS - 1 - i as u32);
        }
        let raw = int_val
            .checked_mul(SCALE)
            .and_then(|v| v.checked_add(frac_val))
            .ok_or_else(out_of_range)?;
        Ok(Fixed(if neg { -raw } else { raw }))
    }
}

fn div_round_half_even(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    let twice = r.abs() * 2;
    let away = match twice.cmp(&d.abs()) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => q % 2 != 0,
    };
    if away {
        if (n < 0) != (d < 0) {
            q - 1
        } else {
            q + 1
        }
    } else {
        q
    }
}

impl fmt::Display for Fixed {
    /// Shortest exact form: `5000.25`, `2`, `-0.5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let int = abs / SCALE as u64;
        let frac = abs % SCALE as u64;
        if frac == 0 {
            write!(f, "{sign}{int}")
        } else {
            let digits = format!("{frac:08}");
            write!(f, "{sign}{int}.{}", digits.trim_end_matches('0'))
        }
    }
}

impl fmt::Debug for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fixed {
    type Err = FixedError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fixed::parse(s)
    }
}

macro_rules! fixed_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub Fixed);

        impl $name {
            pub const ZERO: $name = $name(Fixed::ZERO);

            pub fn parse(text: &str) -> Result<$name, FixedError> {
                Fixed::parse(text).map($name)
            }

            pub const fn from_raw(raw: i64) -> $name {
                $name(Fixed::from_raw(raw))
            }

            pub fn from_int(n: i64) -> Option<$name> {
                Fixed::from_int(n).map($name)
            }

            pub const fn fixed(self) -> Fixed {
                self.0
            }

            pub fn is_zero(self) -> bool {
                self.0.is_zero()
            }

            pub fn is_positive(self) -> bool {
                self.0.is_positive()
            }

            pub fn is_negative(self) -> bool {
                self.0.is_negative()
            }

            pub fn abs(self) -> $name {
                $name(self.0.abs())
            }

            pub fn negate(self) -> $name {
                $name(self.0.negate())
            }

            pub fn checked_add(self, o: $name) -> Option<$name> {
                self.0.checked_add(o.0).map($name)
            }

            pub fn checked_sub(self, o: $name) -> Option<$name> {
                self.0.checked_sub(o.0).map($name)
            }

            pub fn saturating_add(self, o: $name) -> $name {
                $name(self.0.saturating_add(o.0))
            }

            pub fn saturating_sub(self, o: $name) -> $name {
                $name(self.0.saturating_sub(o.0))
            }

            pub fn min(self, o: $name) -> $name {
                $name(self.0.min(o.0))
            }

            pub fn max(self, o: $name) -> $name {
                $name(self.0.max(o.0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = FixedError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }
    };
}

fixed_newtype!(
    /// A price in the instrument's quote currency.
    Price
);
fixed_newtype!(
    /// A quantity of contracts, shares or coins. Signed where it is a position.
    Qty
);
fixed_newtype!(
    /// An amount of money (cash, P&L, notional, commission).
    Money
);

/// Money value of `qty` at `price` for an instrument with `multiplier` (point value):
/// `price × qty × multiplier`, one rounding at the end. `None` on overflow.
pub fn notional(price: Price, qty: Qty, multiplier: Fixed) -> Option<Money> {
    price.0.checked_mul3(qty.0, multiplier).map(Money)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parse_and_display_table() {
        let cases = [
            ("5000.25", Some("5000.25")),
            ("2", Some("2")),
            ("-0.5", Some("-0.5")),
            ("-.5", Some("-0.5")),
            ("-0", Some("0")),
            (".5", Some("0.5")),
            ("5.", Some("5")),
            ("0.00000001", Some("0.00000001")),
            ("1.000000000", Some("1")),
            ("92233720368", Some("92233720368")),
            ("0.000000001", None),
            ("1e5", None),
            ("abc", None),
            ("", None),
            ("-", None),
            ("1.2.3", None),
            ("92233720369", None),
            // Only digits, one point and a leading minus: no sign `+`, no spaces, no exponent.
            ("+1", None),
            ("+1.10", None),
            (" 1", None),
            ("1 ", None),
            ("- 1", None),
            ("1 000", None),
            ("\t1", None),
            ("1\n", None),
            ("--1", None),
            ("-+1", None),
            ("1e3", None),
            ("1E3", None),
            ("1e-2", None),
            ("1.5E+2", None),
            ("-1e3", None),
        ];
        for (text, expected) in cases {
            let got = Fixed::parse(text).ok().map(|f| f.to_string());
            assert_eq!(got.as_deref(), expected, "{text:?}");
        }
        assert_eq!(
            Fixed::parse("0.000000001"),
            Err(FixedError::TooPrecise("0.000000001".into()))
        );
        assert_eq!(Fixed::parse(" 1"), Err(FixedError::Malformed(" 1".into())));
        // The newtypes share the rule.
        assert!(Price::parse("+5000").is_err());
        assert!(Qty::parse("2 ").is_err());
        assert_eq!(Qty::parse("-2").unwrap().to_string(), "-2");
    }

    #[test]
    fn arithmetic_is_exact_and_rounds_half_even() {
        let f = |s: &str| Fixed::parse(s).unwrap();
        assert_eq!(f("0.1").checked_add(f("0.2")), Some(f("0.3")));
        assert_eq!(f("5000.25").checked_mul(f("2")), Some(f("10000.5")));
        // 0.00000001 × 0.5 = 0.000000005 → ties to even → 0
        assert_eq!(f("0.00000001").checked_mul(f("0.5")), Some(f("0")));
        assert_eq!(f("0.00000003").checked_mul(f("0.5")), Some(f("0.00000002")));
        assert_eq!(
            f("-0.00000003").checked_mul(f("0.5")),
            Some(f("-0.00000002"))
        );
        assert_eq!(f("10").checked_div(f("4")), Some(f("2.5")));
        assert_eq!(f("1").checked_div(f("3")), Some(f("0.33333333")));
        assert_eq!(f("1").checked_div(Fixed::ZERO), None);
        assert_eq!(
            Fixed::from_raw(i64::MAX).checked_add(Fixed::from_raw(1)),
            None
        );
        let es = notional(
            Price::parse("5000.25").unwrap(),
            Qty::parse("2").unwrap(),
            f("50"),
        )
        .unwrap();
        assert_eq!(es, Money::parse("500025").unwrap());
    }

    #[test]
    fn steps_and_rounding() {
        let f = |s: &str| Fixed::parse(s).unwrap();
        assert!(f("5000.25").is_multiple_of(f("0.25")));
        assert!(!f("5000.3").is_multiple_of(f("0.25")));
        assert!(f("-1.5").is_multiple_of(f("0.5")));
        assert_eq!(f("5000.3").round_to(f("0.25")), f("5000.25"));
        assert_eq!(f("5000.375").round_to(f("0.25")), f("5000.5"));
        assert_eq!(f("-1.3").round_to(f("0.25")), f("-1.25"));
    }
}
