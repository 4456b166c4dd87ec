//! The admin function as a library: configuration and the router it serves, so tests drive
//! exactly what the Lambda runs (`main.rs` only wires it).

use std::time::Duration;

use aws_adapters::env::{ConfigError, Env};
use aws_adapters::infra::MetricsFunctions;
use aws_adapters::infra::{InfraError, Infrastructure};
use shared::admin::{Admin, AdminConfig};
use shared::clock::Clock;
use shared::config::parse_sources;
use shared::delivery::ssrf::NetworkPolicy;
use shared::pipeline::track::state::Conversations;
use shared::pipeline::track::sweep::Sweep;
use shared::ports::{Source, StaticSources};
use shared::send::Sender;
use shared::signature::Secret;
use std::sync::Arc;

/// Everything the admin function needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TABLE_NAME`: endpoints, delivery records, idempotency keys.
    pub table_name: String,
    /// `DELIVERY_QUEUE_URL`: where retried and recovered deliveries go.
    pub delivery_queue_url: String,
    /// `DELIVERY_DLQ_URL`: the dead-letter queue redrive reads.
    pub delivery_dlq_url: String,
    /// `OUTBOUND_QUEUE_URL`: where `whatsapp.conversation.ended|transferred` go.
    pub outbound_queue_url: String,
    /// `RAW_TTL_DAYS` (7): how long claim-checked events are kept.
    pub blob_ttl: Duration,
    /// `ADMIN_API_KEYS` (comma-separated, at least one of 16+ characters),
    /// `SECRET_ROTATION_GRACE_HOURS` (24), `ATTEMPT_TTL_DAYS` (30),
    /// `CAMPAIGN_COMPLETE_AFTER_HOURS` (24).
    pub admin: AdminConfig,
    /// How long delivery records are kept (the deliver function's `ATTEMPT_TTL_DAYS`).
    pub record_ttl: Duration,
    /// `CONVERSATION_IDLE_HOURS`, `MESSAGE_TTL_DAYS`, `RECENT_MESSAGES`: as track keeps them
    /// (closing, transferring and annotating write conversations too).
    pub conversations: aws_adapters::env::ConversationSettings,
    /// `SWEEP_PAGE_SIZE` (100).
    pub sweep_page: usize,
    /// `WAGATE_SOURCES` (optional here): the sources sends and campaigns name, with their send
    /// settings (access token, WAHA URL). Without it `POST /v1/messages` answers 422.
    pub sources: Vec<Source>,
    /// `MEDIA_BUCKET` (optional): the media stage's bucket, for `GET /v1/media/{id}`; with
    /// `MEDIA_URL_TTL_SECONDS` (86400) for the URLs it hands out.
    pub media_bucket: Option<String>,
    /// The media settings (`MEDIA_URL_TTL_SECONDS` is the one used here).
    pub media: shared::media::MediaConfig,
    /// `METRICS_FUNCTIONS` (comma-separated function names) and `METRICS_DELIVER_FUNCTION`
    /// (optional): whose CloudWatch metrics the overview (`GET /v1/stats`) reads.
    pub metrics: MetricsFunctions,
}

impl Config {
    /// The environment variables this function reads (checked against `template.yaml`).
    pub const VARIABLES: &'static [&'static str] = &[
        "TABLE_NAME",
        "DELIVERY_QUEUE_URL",
        "DELIVERY_DLQ_URL",
        "OUTBOUND_QUEUE_URL",
        "RAW_TTL_DAYS",
        "ADMIN_API_KEYS",
        "ADMIN_API_KEYS_PARAMETER",
        "SECRET_ROTATION_GRACE_HOURS",
        "ATTEMPT_TTL_DAYS",
        "CONVERSATION_IDLE_HOURS",
        "MESSAGE_TTL_DAYS",
        "RECENT_MESSAGES",
        "SWEEP_PAGE_SIZE",
        "CAMPAIGN_COMPLETE_AFTER_HOURS",
        "WAGATE_SOURCES",
        "WAGATE_SOURCES_PARAMETER",
        "MEDIA_BUCKET",
        "MEDIA_URL_TTL_SECONDS",
        "METRICS_FUNCTIONS",
        "METRICS_DELIVER_FUNCTION",
    ];

    /// The secrets that may come from SSM Parameter Store instead (`{NAME}_PARAMETER`, read by
    /// `main` through `aws_adapters::secrets` before the configuration).
    pub const SECRETS: &'static [&'static str] = &["ADMIN_API_KEYS", "WAGATE_SOURCES"];

    /// Reads the configuration through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let keys: Vec<Secret> = env
            .required("ADMIN_API_KEYS")?
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| Secret::from(k.to_owned()))
            .collect();
        if keys.is_empty() || keys.iter().any(|k| k.expose().len() < 16) {
            return Err(ConfigError::Invalid {
                name: "ADMIN_API_KEYS",
                reason: "give one or more comma-separated keys of at least 16 characters".into(),
            });
        }
        Ok(Self {
            table_name: env.required("TABLE_NAME")?,
            delivery_queue_url: env.required("DELIVERY_QUEUE_URL")?,
            delivery_dlq_url: env.required("DELIVERY_DLQ_URL")?,
            outbound_queue_url: env.required("OUTBOUND_QUEUE_URL")?,
            blob_ttl: env.duration("RAW_TTL_DAYS", 7, 0, 24 * 3600)?,
            admin: AdminConfig {
                api_keys: keys,
                network: NetworkPolicy::PublicOnly,
                rotation_grace: env.duration("SECRET_ROTATION_GRACE_HOURS", 24, 0, 3600)?,
                campaign_complete_after: env.duration(
                    "CAMPAIGN_COMPLETE_AFTER_HOURS",
                    24,
                    1,
                    3600,
                )?,
                ..AdminConfig::default()
            },
            record_ttl: env.duration("ATTEMPT_TTL_DAYS", 30, 1, 24 * 3600)?,
            conversations: env.conversations()?,
            sweep_page: env.sweep_page()?,
            sources: match env.0("WAGATE_SOURCES").filter(|s| !s.trim().is_empty()) {
                Some(json) => parse_sources(&json).map_err(|e| ConfigError::Invalid {
                    name: "WAGATE_SOURCES",
                    reason: e.to_string(),
                })?,
                None => Vec::new(),
            },
            media_bucket: env.0("MEDIA_BUCKET").filter(|b| !b.trim().is_empty()),
            media: env.media()?,
            metrics: MetricsFunctions {
                all: env.0("METRICS_FUNCTIONS")
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect(),
                deliver: env.0("METRICS_DELIVER_FUNCTION")
                    .map(|f| f.trim().to_owned())
                    .filter(|f| !f.is_empty()),
            },
        })
    }
}

/// The management API from its configuration, on `infra`: the stores, the delivery queue and
/// its dead-letter queue (retry, recover, redrive), conversations with their events going to
/// the outbound queue (close, transfer), and the sender of test deliveries. What the Lambda and
/// the local gateway serve.
pub fn build(config: &Config, infra: &dyn Infrastructure) -> Result<Admin, InfraError> {
    let sweep = Sweep::emitting_to(
        Conversations {
            docs: infra.docs(),
            settings: config.conversations,
        },
        infra.queue(&config.outbound_queue_url)?,
        infra.blobs(),
        config.blob_ttl,
        config.sweep_page,
    );
    let mut admin = Admin::new(
        infra.docs(),
        infra.blobs(),
        infra.queue(&config.delivery_queue_url)?,
        infra.queue(&config.delivery_dlq_url)?,
        config.record_ttl,
        config.admin.clone(),
    );
    // Uncached on AWS, where no other instance would see the change; in local mode the
    // stages' cache, which the change clears.
    admin.endpoints = infra.endpoints(std::time::Duration::ZERO);
    let admin = admin
        .with_conversations(sweep)
        .with_sender(infra.http(config.admin.network)?)
        .with_sources(Arc::new(StaticSources::new(config.sources.clone())))
        .with_provider(Sender::new(infra.provider_api()?));
    let admin = match infra.metrics(&config.metrics) {
        Some(metrics) => admin.with_metrics(metrics),
        None => admin,
    };
    Ok(match &config.media_bucket {
        Some(bucket) => admin.with_media(shared::media::MediaFiles {
            docs: infra.docs(),
            store: infra.media_store(bucket)?,
            url_ttl: config.media.url_ttl,
        }),
        None => admin,
    })
}

/// The function's HTTP surface: the management API on every path API Gateway sends
/// (`/v1/{proxy+}`, with the stage before it when the stage is not `$default`), on the system
/// clock. `lambda_http::run` serves it; tests send it `events/admin-*.json` requests.
pub fn router(admin: Admin) -> axum::Router {
    admin.router(Clock::system())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        aws_adapters::env::lookup_in(pairs)
    }

    const BASE: [(&str, &str); 4] = [
        ("TABLE_NAME", "t"),
        ("DELIVERY_QUEUE_URL", "q"),
        ("DELIVERY_DLQ_URL", "d"),
        ("OUTBOUND_QUEUE_URL", "o"),
    ];

    #[test]
    fn keys_are_required_long_and_may_be_several() {
        let mut pairs = BASE.to_vec();
        assert!(Config::from_lookup(env(&pairs)).is_err());
        pairs.push(("ADMIN_API_KEYS", "short"));
        let err = Config::from_lookup(env(&pairs)).unwrap_err().to_string();
        assert!(
            err.contains("ADMIN_API_KEYS") && !err.contains("short"),
            "{err}"
        );
        pairs.pop();
        pairs.push(("ADMIN_API_KEYS", "key-one-0123456789, key-two-0123456789"));
        let config = Config::from_lookup(env(&pairs)).unwrap();
        assert_eq!(config.admin.api_keys.len(), 2);
        assert_eq!(config.admin.rotation_grace, Duration::from_secs(24 * 3600));
    }
}
