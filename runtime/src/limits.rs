//! Caps on what a run keeps: each variable and step output, the whole run state, and how
//! deeply any stored value nests. A step that would break one fails with
//! `state_too_large` and changes nothing.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use trellis_model::measure::{Measure, measure};

/// The deepest value a variable, a step output or a call's input may be. serde_json (and so
/// the database driver) reads back at most 128 levels; a run's state wraps its values in a
/// few more, so every stored value stays well below.
pub const MAX_VALUE_DEPTH: usize = 64;

/// What one step's expressions may cost together (see `trellis_model::expr`): ten
/// evaluations at the limit of one, the values they convert included.
pub const STEP_BUDGET: u64 = 10 * trellis_model::expr::COST_LIMIT;

/// Size caps of one run, in bytes of JSON text; admin-settable per workspace within
/// [`RunLimits::MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLimits {
    /// One variable, one step output, or one connector call's config and input.
    pub value_bytes: u64,
    /// Everything a run keeps between steps: variables, step outputs, pending work.
    pub state_bytes: u64,
}

impl RunLimits {
    pub const DEFAULT: RunLimits = RunLimits {
        value_bytes: 1 << 20,
        state_bytes: 4 << 20,
    };
    pub const MAX: RunLimits = RunLimits {
        value_bytes: 16 << 20,
        state_bytes: 64 << 20,
    };

    /// Checks one value that is about to be stored (`what` names it in the error).
    pub fn check_value(&self, what: &str, value: &Value) -> Result<Measure, String> {
        let m = self.check_shape(what, value)?;
        if m.bytes > self.value_bytes {
            return Err(format!(
                "state_too_large: {what} is {} as JSON; a variable or step output may be at most {}",
                human_bytes(m.bytes),
                human_bytes(self.value_bytes)
            ));
        }
        Ok(m)
    }

    /// Checks what any stored value must be, whatever its size: nested within
    /// [`MAX_VALUE_DEPTH`], and without a NUL character (which PostgreSQL cannot store, so
    /// neither database takes one).
    pub fn check_shape(&self, what: &str, value: &Value) -> Result<Measure, String> {
        let m = measure(value);
        if m.depth > MAX_VALUE_DEPTH {
            return Err(format!(
                "state_too_large: {what} nests {} levels deep; a stored value may nest at most {MAX_VALUE_DEPTH}",
                m.depth
            ));
        }
        if m.nul {
            return Err(format!(
                "invalid_text: {what} holds a NUL character (\\u0000), which cannot be stored"
            ));
        }
        Ok(m)
    }

    /// Checks the run's variables and step outputs together: `total` bytes of JSON.
    pub fn check_total(&self, total: u64) -> Result<(), String> {
        if total > self.state_bytes {
            return Err(format!(
                "state_too_large: the run's variables and step outputs would be {} as JSON; a run may keep at most {}",
                human_bytes(total),
                human_bytes(self.state_bytes)
            ));
        }
        Ok(())
    }
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits::DEFAULT
    }
}

/// `1.5 MiB`, `512 KiB`, `300 B`.
pub fn human_bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else if n >= KIB {
        format!("{:.1} KiB", n as f64 / KIB as f64)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_states_over_their_caps_are_refused() {
        let limits = RunLimits {
            value_bytes: 20,
            state_bytes: 30,
        };
        assert!(limits.check_value("var x", &json!("short")).is_ok());
        let err = limits
            .check_value("var x", &json!("a string longer than twenty"))
            .unwrap_err();
        assert!(err.starts_with("state_too_large: var x is 29 B"), "{err}");
        let mut deep = json!(1);
        for _ in 0..=MAX_VALUE_DEPTH {
            deep = json!([deep]);
        }
        let err = RunLimits::DEFAULT.check_value("output", &deep).unwrap_err();
        assert!(err.contains("nests 65 levels"), "{err}");
        assert!(limits.check_total(30).is_ok());
        let err = limits.check_total(36).unwrap_err();
        assert!(err.contains("36 B"), "{err}");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
