use thiserror::Error;

/// Errors from configuring or computing a reward.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RewardError {
    /// A configuration field holds a value the reward cannot use.
    #[error("invalid reward configuration: `{field}` {reason}")]
    InvalidConfig {
        /// The offending field, as written in the configuration.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A format score outside `[0, 1]` came back from a format hook.
    #[error("format reward hook returned {value}, outside [0, 1]")]
    FormatOutOfRange {
        /// The value the hook returned.
        value: f64,
    },
}
