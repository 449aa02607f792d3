//! Retry delays: exponential backoff with optional full jitter.

use std::time::Duration;

use trellis_model::RetryPolicy;
use trellis_model::duration::parse_duration;

/// Delay before attempt `next_attempt` (2 = the first retry), or `None` when the policy
/// allows no more attempts. `unit` in `[0, 1)` supplies the jitter, so the function stays pure.
pub fn delay(policy: Option<&RetryPolicy>, next_attempt: u32, unit: f64) -> Option<Duration> {
    let policy = policy?;
    if next_attempt > policy.max_attempts {
        return None;
    }
    let base = parse_duration(&policy.backoff).unwrap_or(Duration::from_secs(1));
    let cap = parse_duration(&policy.max_backoff).unwrap_or(Duration::from_secs(300));
    let exponent = next_attempt.saturating_sub(2).min(60) as i32;
    let raw = base.as_secs_f64() * policy.multiplier.max(1.0).powi(exponent);
    let capped = raw.min(cap.as_secs_f64());
    let secs = if policy.jitter {
        capped * unit.clamp(0.0, 1.0)
    } else {
        capped
    };
    Some(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: bool) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            backoff: "1s".into(),
            max_backoff: "3s".into(),
            multiplier: 2.0,
            jitter,
        }
    }

    #[test]
    fn grows_caps_and_stops() {
        let p = policy(false);
        assert_eq!(delay(Some(&p), 2, 0.5), Some(Duration::from_secs(1)));
        assert_eq!(delay(Some(&p), 3, 0.5), Some(Duration::from_secs(2)));
        assert_eq!(delay(Some(&p), 4, 0.5), Some(Duration::from_secs(3)));
        assert_eq!(delay(Some(&p), 5, 0.5), None);
        assert_eq!(delay(None, 2, 0.5), None);
        assert_eq!(
            delay(Some(&policy(true)), 3, 0.25),
            Some(Duration::from_millis(500))
        );
    }
}
