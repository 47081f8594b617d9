//! Unit newtypes for the public API.
//!
//! The kernel works in plain `f64` (metres, seconds, m/s, m/s²) because it reproduces CityFlow's
//! formulas operation by operation and wrapping every intermediate would only add noise. The
//! types below are used where values cross the API boundary (vehicle parameters, scenario
//! generator, reports), which is where units get mixed up in practice: a road length passed as a
//! speed, or a time in steps passed as seconds.

use std::fmt;
use std::ops::{Add, Div, Mul, Sub};

macro_rules! unit {
    ($(#[$doc:meta])* $name:ident, $suffix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
        pub struct $name(pub f64);

        impl $name {
            /// The raw value.
            pub const fn get(self) -> f64 {
                self.0
            }
        }

        impl Add for $name {
            type Output = $name;
            fn add(self, rhs: $name) -> $name {
                $name(self.0 + rhs.0)
            }
        }

        impl Sub for $name {
            type Output = $name;
            fn sub(self, rhs: $name) -> $name {
                $name(self.0 - rhs.0)
            }
        }

        impl Mul<f64> for $name {
            type Output = $name;
            fn mul(self, rhs: f64) -> $name {
                $name(self.0 * rhs)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", self.0, $suffix)
            }
        }
    };
}

unit!(
    /// A distance in metres.
    Meters,
    " m"
);
unit!(
    /// A duration or a point in simulated time, in seconds.
    Seconds,
    " s"
);
unit!(
    /// A speed in metres per second.
    MetersPerSecond,
    " m/s"
);
unit!(
    /// An acceleration (or deceleration, given as a positive number) in m/s².
    MetersPerSecondSquared,
    " m/s²"
);

impl Div<MetersPerSecond> for Meters {
    type Output = Seconds;
    fn div(self, rhs: MetersPerSecond) -> Seconds {
        Seconds(self.0 / rhs.0)
    }
}

impl Div<Seconds> for Meters {
    type Output = MetersPerSecond;
    fn div(self, rhs: Seconds) -> MetersPerSecond {
        MetersPerSecond(self.0 / rhs.0)
    }
}

impl Mul<Seconds> for MetersPerSecond {
    type Output = Meters;
    fn mul(self, rhs: Seconds) -> Meters {
        Meters(self.0 * rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_over_speed_is_a_duration() {
        let t: Seconds = Meters(100.0) / MetersPerSecond(12.5);
        assert_eq!(t, Seconds(8.0));
        let d: Meters = MetersPerSecond(2.0) * Seconds(3.0);
        assert_eq!(d, Meters(6.0));
        assert_eq!(Meters(6.0) / Seconds(3.0), MetersPerSecond(2.0));
        assert_eq!(format!("{}", Meters(1.5)), "1.5 m");
    }
}
