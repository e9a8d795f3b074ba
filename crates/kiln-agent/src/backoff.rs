//! Exponential backoff with jitter, for every retried call.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Delays that double from `min` to `max`, each drawn from the upper half
/// of the current step so that agents restarted together spread out.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
    seed: u64,
}

/// For claims and registration.
pub(crate) const CONNECT: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(10));
/// For logs and completions: shorter at the top, so that a recovering
/// server gets the pending data quickly.
pub(crate) const DELIVER: (Duration, Duration) =
    (Duration::from_millis(50), Duration::from_secs(5));

impl Backoff {
    pub(crate) fn new((min, max): (Duration, Duration)) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
        Backoff {
            min,
            max,
            step: min,
            seed: nanos ^ 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// The next delay; each call doubles the step up to `max`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        // xorshift64: good enough to spread retries, no dependency.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let half = self.step / 2;
        let jitter = half.mul_f64((self.seed % 1000) as f64 / 1000.0);
        let delay = half + jitter;
        self.step = (self.step * 2).min(self.max);
        delay.max(self.min / 2)
    }

    pub(crate) fn reset(&mut self) {
        self.step = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_max_and_resets() {
        let mut b = Backoff::new((Duration::from_millis(100), Duration::from_secs(1)));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(d <= Duration::from_secs(1));
        }
        assert!(b.next_delay() >= Duration::from_millis(500));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
