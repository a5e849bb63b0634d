//! Sums of money that do not depend on the order of their terms.
//!
//! Each amount enters a sum as a whole number of micro-units (millionths of the currency unit,
//! rounded): `f64` adds whole numbers exactly up to 2^53, about nine billion units, so the same
//! payments give the same revenue whatever order a segment layout, a chunk size or a plan's
//! partitions put them in. Summed as plain floating point, the same payments answered
//! 75,030.31 after one import and 75,030.32 after another.
//!
//! Both query paths follow it: the DataFusion plans sum [`micros_expr`], the resident columns
//! hold each payment's amount as micro-units, and the batches of either path carry revenue in
//! micro-units until the answer is read from them ([`from_micros`], [`revenue_from_micros`]).
//! The conversion model's statistics add each visitor's revenue in micro-units too, and turn
//! the sums into currency units once counted.

use datafusion::prelude::{Expr, lit};

use crate::query::result::Revenue;

/// Micro-units in a currency unit.
const MICROS_PER_UNIT: f64 = 1e6;

/// `amount` (currency units) as a whole number of micro-units.
pub(crate) fn to_micros(amount: f64) -> f64 {
    (amount * MICROS_PER_UNIT).round()
}

/// A sum of micro-units in currency units.
pub(crate) fn from_micros(micros: f64) -> f64 {
    micros / MICROS_PER_UNIT
}

/// Each part of a revenue summed in micro-units, in currency units.
pub(crate) fn revenue_from_micros(micros: Revenue) -> Revenue {
    Revenue {
        new: from_micros(micros.new),
        renewal: from_micros(micros.renewal),
        refund: from_micros(micros.refund),
    }
}

/// [`to_micros`] of `amount`, a DataFusion expression of currency units.
pub(crate) fn micros_expr(amount: Expr) -> Expr {
    datafusion::functions::math::expr_fn::round(vec![amount * lit(MICROS_PER_UNIT)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_in_micro_units_do_not_depend_on_the_order() {
        let amounts = [0.1, 0.2, 0.3, 29.99 * 1.1, 1e-7, 75_000.005, 9.99];
        let plain_forward: f64 = amounts.iter().sum();
        let plain_backward: f64 = amounts.iter().rev().sum();
        // The failure this module exists for: plain sums depend on the order.
        assert_ne!(plain_forward, plain_backward);
        let forward: f64 = amounts.iter().map(|a| to_micros(*a)).sum();
        let backward: f64 = amounts.iter().rev().map(|a| to_micros(*a)).sum();
        assert_eq!(forward, backward);
        assert!((from_micros(forward) - plain_forward).abs() < 1e-5);
    }

    #[test]
    fn a_revenue_of_micro_units_reads_back_in_units() {
        let micros = Revenue {
            new: to_micros(29.99),
            renewal: to_micros(0.01),
            refund: 0.0,
        };
        let units = revenue_from_micros(micros);
        assert_eq!((units.new, units.renewal, units.refund), (29.99, 0.01, 0.0));
    }
}
