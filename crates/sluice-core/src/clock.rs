//! Where "now" comes from. The engine never reads a clock (it is handed `now`); the loops that
//! call it read this trait, so tests can drive time by hand.

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Any `Fn() -> DateTime<Utc>` is a clock (tests pass closures over a shared instant).
impl<F: Fn() -> DateTime<Utc> + Send + Sync> Clock for F {
    fn now(&self) -> DateTime<Utc> {
        self()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn closures_are_clocks() {
        let at = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("valid instant");
        let clock: &dyn Clock = &move || at;
        assert_eq!(clock.now(), at);
        assert!(SystemClock.now() > at);
    }
}
