//! Money on documents: integer cents, VAT rates in basis points (2000 =
//! 20 %), computed with checked `i64` arithmetic so that absurd amounts are
//! refused instead of wrapping.
//!
//! Rounding rule: VAT is computed per line, `tax = subtotal × vatRate /
//! 10000` rounded half up to the cent (an exact half cent goes up: 0.5 → 1),
//! where `subtotal = quantity × unitPrice`; a line's total is subtotal + tax;
//! the document's subtotal, tax and total are the sums of its lines' amounts,
//! so what the lines show always adds up to the document's figures. Lines
//! are priced on non-negative amounts; a credit note negates the priced
//! amounts of the invoice it cancels, so its rounding mirrors the invoice's.

/// Basis points in 100 %.
const BASIS: i64 = 10_000;

/// Subtotal, tax and total of a line or a whole document, in cents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    pub subtotal_cents: i64,
    pub tax_cents: i64,
    pub total_cents: i64,
}

impl Amounts {
    /// Prices one line; `None` when an amount does not fit in 64 bits.
    /// Expects `quantity > 0`, `unit_price_cents >= 0` and `vat_rate` in
    /// `0..=10000`, which the input checks guarantee.
    pub fn of_line(quantity: i32, unit_price_cents: i64, vat_rate: i32) -> Option<Amounts> {
        let subtotal = i64::from(quantity).checked_mul(unit_price_cents)?;
        let tax = vat_half_up(subtotal, i64::from(vat_rate))?;
        Some(Amounts {
            subtotal_cents: subtotal,
            tax_cents: tax,
            total_cents: subtotal.checked_add(tax)?,
        })
    }

    /// The sum of `lines`; `None` on overflow.
    pub fn sum<'a>(lines: impl IntoIterator<Item = &'a Amounts>) -> Option<Amounts> {
        lines.into_iter().try_fold(Amounts::default(), |acc, line| {
            Some(Amounts {
                subtotal_cents: acc.subtotal_cents.checked_add(line.subtotal_cents)?,
                tax_cents: acc.tax_cents.checked_add(line.tax_cents)?,
                total_cents: acc.total_cents.checked_add(line.total_cents)?,
            })
        })
    }

    /// The same amounts with the sign flipped (a credit note's lines).
    pub fn negated(self) -> Amounts {
        // Amounts are priced from non-negative inputs, so never i64::MIN:
        // saturating_neg is exact here.
        Amounts {
            subtotal_cents: self.subtotal_cents.saturating_neg(),
            tax_cents: self.tax_cents.saturating_neg(),
            total_cents: self.total_cents.saturating_neg(),
        }
    }
}

/// `subtotal × rate / 10000` rounded half up, for `subtotal >= 0`, without an
/// intermediate product that could overflow: with `subtotal = 10000 a + b`,
/// the result is `a × rate + round(b × rate / 10000)`.
fn vat_half_up(subtotal: i64, rate: i64) -> Option<i64> {
    let whole = (subtotal / BASIS).checked_mul(rate)?;
    let part = ((subtotal % BASIS) * rate + BASIS / 2) / BASIS;
    whole.checked_add(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_is_rounded_half_up_per_line() {
        // 3 × 3.33 = 9.99; 5.5 % of it is 0.54945 → 0.55.
        let line = Amounts::of_line(3, 333, 550).unwrap();
        assert_eq!(
            (line.subtotal_cents, line.tax_cents, line.total_cents),
            (999, 55, 1054)
        );
        // An exact half cent goes up: 5 % of 0.10 = 0.005 → 0.01.
        assert_eq!(Amounts::of_line(1, 10, 500).unwrap().tax_cents, 1);
        // Just under a half cent goes down: 5 % of 0.09 = 0.0045 → 0.00.
        assert_eq!(Amounts::of_line(1, 9, 500).unwrap().tax_cents, 0);
        assert_eq!(Amounts::of_line(2, 1_000, 2000).unwrap().total_cents, 2_400);
        assert_eq!(Amounts::of_line(1, 12_345, 0).unwrap().tax_cents, 0);
    }

    #[test]
    fn large_amounts_are_exact_and_overflow_is_refused() {
        // subtotal × rate would overflow i64, the result does not.
        let big = i64::MAX / 2;
        let line = Amounts::of_line(1, big, 10_000).unwrap();
        assert_eq!(line.tax_cents, big);
        assert_eq!(line.total_cents, big * 2);
        assert_eq!(Amounts::of_line(2, i64::MAX / 2 + 1, 0), None);
        assert_eq!(Amounts::of_line(1, i64::MAX, 1), None);
        let half = Amounts::of_line(1, i64::MAX / 2, 0).unwrap();
        assert!(Amounts::sum([&half, &half]).is_some());
        assert_eq!(Amounts::sum([&half, &half, &half]), None);
    }

    #[test]
    fn negation_mirrors_the_line() {
        let line = Amounts::of_line(3, 333, 550).unwrap().negated();
        assert_eq!(
            (line.subtotal_cents, line.tax_cents, line.total_cents),
            (-999, -55, -1054)
        );
    }
}
