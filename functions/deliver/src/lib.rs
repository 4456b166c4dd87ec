//! The deliver function as a library: configuration, the reqwest sender, and the SQS handler.

use aws_adapters::env::{ConfigError, Env};
use aws_adapters::infra::{InfraError, Infrastructure};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use shared::delivery::deliver::{Deliver, DeliverConfig};
use shared::delivery::retry::RetryPolicy;
use shared::delivery::ssrf::NetworkPolicy;

/// Everything the deliver function needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TABLE_NAME`: endpoints and attempt records.
    pub table_name: String,
    /// `DELIVERY_QUEUE_URL`: the queue this function consumes (for retry delays).
    pub delivery_queue_url: String,
    /// `DELIVERY_DLQ_URL`: where tasks go after the last attempt or a final failure.
    pub delivery_dlq_url: String,
    /// `DELIVERY_TIMEOUT_SECONDS` (10), `MAX_ATTEMPTS` (8), `ATTEMPT_TTL_DAYS` (30).
    pub deliver: DeliverConfig,
    /// `ENDPOINT_CACHE_SECONDS` (default 5): how long an instance reuses the endpoints it read.
    pub endpoint_cache: std::time::Duration,
}

impl Config {
    /// The environment variables this function reads (checked against `template.yaml`).
    pub const VARIABLES: &'static [&'static str] = &[
        "TABLE_NAME",
        "DELIVERY_QUEUE_URL",
        "DELIVERY_DLQ_URL",
        "DELIVERY_TIMEOUT_SECONDS",
        "MAX_ATTEMPTS",
        "ATTEMPT_TTL_DAYS",
        "ENDPOINT_CACHE_SECONDS",
    ];

    /// Outside Lambda only (the runtime API emulator of `wagate-bench lambda-bench`): `true`
    /// lets this binary deliver to `http://` loopback receivers. Deliberately not in
    /// [`Self::VARIABLES`] nor in the template, and refused when Lambda itself started the process
    /// (`AWS_LAMBDA_INITIALIZATION_TYPE` is set), where loopback is the sandbox's runtime API.
    pub const ALLOW_LOOPBACK: &'static str = "WAGATE_ALLOW_LOOPBACK_ENDPOINTS";

    /// Reads the configuration through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let max_attempts = u32::try_from(env.number("MAX_ATTEMPTS", 8, 1)?).unwrap_or(8);
        let network = match env.0(Self::ALLOW_LOOPBACK).as_deref() {
            None | Some("" | "false") => NetworkPolicy::PublicOnly,
            Some("true") if env.0("AWS_LAMBDA_INITIALIZATION_TYPE").is_none() => {
                NetworkPolicy::AllowLoopback
            }
            Some("true") => {
                return Err(ConfigError::Invalid {
                    name: Self::ALLOW_LOOPBACK,
                    reason: "is for local benchmarks only and refused on AWS Lambda".into(),
                });
            }
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: Self::ALLOW_LOOPBACK,
                    reason: "must be true or false".into(),
                });
            }
        };
        Ok(Self {
            table_name: env.required("TABLE_NAME")?,
            delivery_queue_url: env.required("DELIVERY_QUEUE_URL")?,
            delivery_dlq_url: env.required("DELIVERY_DLQ_URL")?,
            deliver: DeliverConfig {
                timeout: env.duration("DELIVERY_TIMEOUT_SECONDS", 10, 1, 1)?,
                retry: RetryPolicy {
                    max_attempts,
                    ..RetryPolicy::default()
                },
                attempt_ttl: env.duration("ATTEMPT_TTL_DAYS", 30, 1, 24 * 3600)?,
                network,
            },
            endpoint_cache: env.endpoint_cache()?,
        })
    }
}

/// The deliver stage from its configuration, on `infra` (its HTTP sender under
/// `config.deliver.network`): what the Lambda and the local gateway run.
pub fn build(config: &Config, infra: &dyn Infrastructure) -> Result<Deliver, InfraError> {
    Ok(Deliver {
        endpoints: infra.endpoints(config.endpoint_cache),
        docs: infra.docs(),
        http: infra.http(config.deliver.network)?,
        queue: infra.queue(&config.delivery_queue_url)?,
        dead_letter: infra.queue(&config.delivery_dlq_url)?,
        blobs: infra.blobs(),
        config: config.deliver.clone(),
    })
}

/// Handles one SQS batch of delivery tasks; transient failures come back after their backoff.
pub async fn handle(deliver: &Deliver, event: SqsEvent) -> SqsBatchResponse {
    let messages = aws_adapters::lambda::received(&event);
    let failed = deliver.process_batch(&messages, chrono::Utc::now()).await;
    aws_adapters::lambda::batch_response(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut vars = vec![
            ("TABLE_NAME", "t"),
            ("DELIVERY_QUEUE_URL", "q"),
            ("DELIVERY_DLQ_URL", "d"),
        ];
        vars.extend_from_slice(extra);
        Config::from_lookup(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn loopback_receivers_are_an_opt_in_refused_on_lambda() {
        let public = config(&[]).unwrap();
        assert_eq!(public.deliver.network, NetworkPolicy::PublicOnly);
        let local = config(&[(Config::ALLOW_LOOPBACK, "true")]).unwrap();
        assert_eq!(local.deliver.network, NetworkPolicy::AllowLoopback);
        let off = config(&[(Config::ALLOW_LOOPBACK, "false")]).unwrap();
        assert_eq!(off.deliver.network, NetworkPolicy::PublicOnly);
        let on_lambda = config(&[
            (Config::ALLOW_LOOPBACK, "true"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ]);
        assert!(on_lambda.is_err());
        assert!(config(&[(Config::ALLOW_LOOPBACK, "yes")]).is_err());
    }
}
