//! Reading function configuration from the environment: one helper for every function so the
//! error messages (naming the variable, never its value) are the same everywhere.

use std::time::Duration;

/// A configuration problem, naming the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Typed access to variables through a lookup function (the process environment in `main`, a
/// map in tests, so tests never mutate the process environment).
pub struct Env<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> std::fmt::Debug for Env<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// A required, non-empty variable.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        (self.0)(name)
            .filter(|v| !v.is_empty())
            .ok_or(ConfigError::Missing(name))
    }

    /// A whole number at least `min`, or `default` when unset or empty.
    pub fn number(&self, name: &'static str, default: u64, min: u64) -> Result<u64, ConfigError> {
        let value = match (self.0)(name).filter(|v| !v.trim().is_empty()) {
            None => default,
            Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
                name,
                reason: format!("`{v}` is not a whole number"),
            })?,
        };
        if value < min {
            return Err(ConfigError::Invalid {
                name,
                reason: format!("must be at least {min}"),
            });
        }
        Ok(value)
    }

    /// A duration given in `unit_secs` units (e.g. hours: 3600).
    pub fn duration(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        unit_secs: u64,
    ) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(
            self.number(name, default, min)?.saturating_mul(unit_secs),
        ))
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// `ENDPOINT_CACHE_SECONDS` (default 5, 0 to 300): how long a function instance reuses the
    /// endpoints it read ([`shared::ports::cache::ReadCache`]).
    pub fn endpoint_cache(&self) -> Result<Duration, ConfigError> {
        let d = self.duration("ENDPOINT_CACHE_SECONDS", 5, 0, 1)?;
        if d > Duration::from_secs(300) {
            return Err(ConfigError::Invalid {
                name: "ENDPOINT_CACHE_SECONDS",
                reason: "must be at most 300".into(),
            });
        }
        Ok(d)
    }
}

/// A lookup over fixed pairs (tests and tools), for [`Env`] and the functions' `from_lookup`.
pub fn lookup_in(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}
