//! The `wagate` commands that talk to a gateway's management API (`/v1`), local or deployed:
//! `endpoints`, `deliveries`, `dlq`, `conversations`, `audit`. Each prints the API's JSON answer
//! (pretty) on stdout; an error answer goes to stderr as `status code: message` with a non-zero
//! exit.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::api::{ApiClient, segment};

/// Where the management API is and the key to it.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// The gateway's base URL: `http://127.0.0.1:3000` for `wagate serve`, the stack's `ApiUrl`
    /// output for a deployed one.
    #[arg(
        long,
        env = "WAGATE_URL",
        default_value = "http://127.0.0.1:3000",
        global = true
    )]
    pub url: String,
    /// An admin API key (`ADMIN_API_KEYS`); the sample configuration's by default.
    #[arg(
        long,
        env = "WAGATE_API_KEY",
        default_value = "demo-admin-key-local-only",
        hide_default_value = true,
        hide_env_values = true,
        global = true
    )]
    pub api_key: String,
}

/// Paging of a list.
#[derive(Debug, Args, Clone)]
pub struct Paging {
    /// Items per page (1–100).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[arg(long, conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Every page, as one list.
    #[arg(long)]
    pub all: bool,
}

impl Paging {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(l) = self.limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(c) = &self.cursor {
            q.push(("cursor", c.clone()));
        }
        q
    }
}

/// `wagate endpoints …`
#[derive(Debug, Subcommand, Clone)]
pub enum EndpointCommand {
    /// List endpoints.
    List(Paging),
    /// Show one endpoint (custom header values show as `********`).
    Get { id: String },
    /// Create or update endpoints from a JSON file: one object or a list; an object with an
    /// `id` updates that endpoint (an endpoint as `get` printed it can be edited and applied:
    /// `********` header values are kept), one without creates one and prints its secret once.
    Apply { file: PathBuf },
    /// Delete an endpoint.
    Delete { id: String },
    /// Turn deliveries on.
    Enable { id: String },
    /// Turn deliveries off.
    Disable { id: String },
    /// A new signing secret (printed once); the old one keeps signing for the grace period.
    Rotate {
        id: String,
        /// Seconds the old secret keeps signing (default: the gateway's
        /// SECRET_ROTATION_GRACE_HOURS).
        #[arg(long)]
        grace_seconds: Option<u64>,
    },
    /// Send a test event now and print the attempt's result.
    Test {
        id: String,
        /// The event type to send (default: whatsapp.message.received).
        #[arg(long)]
        event_type: Option<String>,
    },
    /// Retry the endpoint's failed deliveries since a time.
    Recover {
        id: String,
        /// RFC 3339 time.
        #[arg(long)]
        since: String,
    },
}

/// `wagate deliveries …`
#[derive(Debug, Subcommand, Clone)]
pub enum DeliveryCommand {
    /// List deliveries, newest first.
    List {
        /// Only this endpoint's.
        #[arg(long)]
        endpoint_id: Option<String>,
        /// `pending`, `retrying`, `delivered`, `failed` or `dead`.
        #[arg(long)]
        status: Option<String>,
        /// Only this event type.
        #[arg(long)]
        event_type: Option<String>,
        /// RFC 3339 times.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// One delivery with its attempts.
    Get { id: String },
    /// Send a delivery again now.
    Retry { id: String },
}

/// `wagate dlq …`
#[derive(Debug, Subcommand, Clone)]
pub enum DlqCommand {
    /// Move dead-lettered deliveries back onto the delivery queue (all, or a selection).
    Redrive {
        /// Only this endpoint's.
        #[arg(long, conflicts_with = "event_id")]
        endpoint_id: Option<String>,
        /// Only this event's.
        #[arg(long)]
        event_id: Option<String>,
        /// At most this many.
        #[arg(long)]
        max: Option<u64>,
    },
}

/// `wagate conversations …`
#[derive(Debug, Subcommand, Clone)]
pub enum ConversationCommand {
    /// List conversations, most recently active first.
    List {
        /// `active` (default) or `ended`.
        #[arg(long)]
        status: Option<String>,
        /// Only this source's.
        #[arg(long)]
        source_id: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// One conversation with its context.
    Get { id: String },
    /// End a conversation (`conversation.ended`).
    Close {
        id: String,
        /// Why (e.g. `resolved`).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Hand a conversation to an agent or a team (`conversation.transferred`).
    Transfer {
        id: String,
        #[arg(long, required_unless_present = "to_team")]
        to_agent: Option<String>,
        #[arg(long)]
        to_team: Option<String>,
        #[arg(long)]
        notes: Option<String>,
    },
    /// Ask for a human to take a conversation over (`conversation.handoff_requested`).
    Handoff {
        id: String,
        /// Why a human is needed (1–500 characters).
        #[arg(long)]
        reason: String,
        /// Who asks: a bot's name, an app id.
        #[arg(long)]
        requested_by: Option<String>,
        /// The team asked for.
        #[arg(long)]
        team_id: Option<String>,
        /// Notes for whoever takes over.
        #[arg(long)]
        notes: Option<String>,
    },
    /// Replace a conversation's automation notes (what bots and flows record, kept apart from
    /// people's notes).
    AutomationNotes {
        id: String,
        /// A note's text; repeat for several, in order. None clears them.
        #[arg(long = "note")]
        notes: Vec<String>,
        /// Who wrote them (a bot's or flow's name), for every note given.
        #[arg(long)]
        author: Option<String>,
    },
    /// Replace a conversation's labels.
    Labels {
        id: String,
        /// Comma-separated; none clears them.
        #[arg(value_delimiter = ',')]
        labels: Vec<String>,
    },
}

/// The management commands.
#[derive(Debug, Subcommand, Clone)]
pub enum ManageCommand {
    /// Subscriber endpoints.
    Endpoints {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: EndpointCommand,
    },
    /// Delivery records and their attempts.
    Deliveries {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: DeliveryCommand,
    },
    /// The delivery dead-letter queue.
    Dlq {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Conversations.
    Conversations {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: ConversationCommand,
    },
    /// The management API's audit trail, newest first.
    Audit {
        #[command(flatten)]
        api: ApiArgs,
        /// Only changes to this target (e.g. an endpoint id).
        #[arg(long)]
        target: Option<String>,
        /// Only this action (e.g. `endpoint.create`).
        #[arg(long)]
        action: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
}

impl ManageCommand {
    fn api(&self) -> &ApiArgs {
        match self {
            Self::Endpoints { api, .. }
            | Self::Deliveries { api, .. }
            | Self::Dlq { api, .. }
            | Self::Conversations { api, .. }
            | Self::Audit { api, .. } => api,
        }
    }
}

fn push(q: &mut Vec<(&'static str, String)>, name: &'static str, value: Option<&String>) {
    if let Some(v) = value {
        q.push((name, v.clone()));
    }
}

/// Runs `command` against the API; the answer to print.
pub async fn run(command: &ManageCommand) -> anyhow::Result<Value> {
    let api = command.api();
    let client = ApiClient::new(&api.url, &api.api_key)?;
    let c = &client;
    let post = |path: String, body: Option<Value>| async move {
        c.call(Method::POST, &path, &[], body.as_ref()).await
    };
    match command {
        ManageCommand::Endpoints { command, .. } => match command {
            EndpointCommand::List(p) => c.list("/v1/endpoints", p.query(), p.all).await,
            EndpointCommand::Get { id } => {
                let path = format!("/v1/endpoints/{}", segment(id)?);
                c.call(Method::GET, &path, &[], None).await
            }
            EndpointCommand::Apply { file } => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let spec: Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", file.display()))?;
                let answers = c.apply_endpoints(&spec).await?;
                Ok(match spec {
                    Value::Array(_) => Value::Array(answers),
                    _ => answers.into_iter().next().unwrap_or(Value::Null),
                })
            }
            EndpointCommand::Delete { id } => {
                let path = format!("/v1/endpoints/{}", segment(id)?);
                c.call(Method::DELETE, &path, &[], None).await
            }
            EndpointCommand::Enable { id } => {
                post(format!("/v1/endpoints/{}/enable", segment(id)?), None).await
            }
            EndpointCommand::Disable { id } => {
                post(format!("/v1/endpoints/{}/disable", segment(id)?), None).await
            }
            EndpointCommand::Rotate { id, grace_seconds } => {
                let body = grace_seconds.map(|g| json!({ "grace_seconds": g }));
                post(
                    format!("/v1/endpoints/{}/rotate-secret", segment(id)?),
                    Some(body.unwrap_or_else(|| json!({}))),
                )
                .await
            }
            EndpointCommand::Test { id, event_type } => {
                let body = event_type
                    .as_ref()
                    .map_or_else(|| json!({}), |t| json!({ "event_type": t }));
                post(format!("/v1/endpoints/{}/test", segment(id)?), Some(body)).await
            }
            EndpointCommand::Recover { id, since } => {
                let path = format!("/v1/endpoints/{}/recover", segment(id)?);
                c.call(Method::POST, &path, &[("since", since.clone())], None)
                    .await
            }
        },
        ManageCommand::Deliveries { command, .. } => match command {
            DeliveryCommand::List {
                endpoint_id,
                status,
                event_type,
                since,
                until,
                paging,
            } => {
                let mut q = paging.query();
                push(&mut q, "endpoint_id", endpoint_id.as_ref());
                push(&mut q, "status", status.as_ref());
                push(&mut q, "event_type", event_type.as_ref());
                push(&mut q, "since", since.as_ref());
                push(&mut q, "until", until.as_ref());
                c.list("/v1/deliveries", q, paging.all).await
            }
            DeliveryCommand::Get { id } => {
                let path = format!("/v1/deliveries/{}", segment(id)?);
                c.call(Method::GET, &path, &[], None).await
            }
            DeliveryCommand::Retry { id } => {
                post(format!("/v1/deliveries/{}/retry", segment(id)?), None).await
            }
        },
        ManageCommand::Dlq {
            command:
                DlqCommand::Redrive {
                    endpoint_id,
                    event_id,
                    max,
                },
            ..
        } => {
            let mut body = serde_json::Map::new();
            if let Some(e) = endpoint_id {
                body.insert("endpoint_id".into(), json!(e));
            }
            if let Some(e) = event_id {
                body.insert("event_id".into(), json!(e));
            }
            if let Some(m) = max {
                body.insert("max".into(), json!(m));
            }
            post(
                "/v1/deliveries/redrive".to_owned(),
                Some(Value::Object(body)),
            )
            .await
        }
        ManageCommand::Conversations { command, .. } => match command {
            ConversationCommand::List {
                status,
                source_id,
                paging,
            } => {
                let mut q = paging.query();
                push(&mut q, "status", status.as_ref());
                push(&mut q, "source_id", source_id.as_ref());
                c.list("/v1/conversations", q, paging.all).await
            }
            ConversationCommand::Get { id } => {
                let path = format!("/v1/conversations/{}", segment(id)?);
                c.call(Method::GET, &path, &[], None).await
            }
            ConversationCommand::Close { id, reason } => {
                let body = reason
                    .as_ref()
                    .map_or_else(|| json!({}), |r| json!({ "reason": r }));
                post(
                    format!("/v1/conversations/{}/close", segment(id)?),
                    Some(body),
                )
                .await
            }
            ConversationCommand::Transfer {
                id,
                to_agent,
                to_team,
                notes,
            } => {
                let mut body = serde_json::Map::new();
                for (k, v) in [
                    ("to_agent", to_agent),
                    ("to_team", to_team),
                    ("notes", notes),
                ] {
                    if let Some(v) = v {
                        body.insert(k.into(), json!(v));
                    }
                }
                post(
                    format!("/v1/conversations/{}/transfer", segment(id)?),
                    Some(Value::Object(body)),
                )
                .await
            }
            ConversationCommand::Handoff {
                id,
                reason,
                requested_by,
                team_id,
                notes,
            } => {
                let mut body = serde_json::Map::new();
                body.insert("reason".into(), json!(reason));
                for (k, v) in [
                    ("requested_by", requested_by),
                    ("team_id", team_id),
                    ("notes", notes),
                ] {
                    if let Some(v) = v {
                        body.insert(k.into(), json!(v));
                    }
                }
                post(
                    format!("/v1/conversations/{}/handoff", segment(id)?),
                    Some(Value::Object(body)),
                )
                .await
            }
            ConversationCommand::AutomationNotes { id, notes, author } => {
                let path = format!("/v1/conversations/{}/automation-notes", segment(id)?);
                let notes: Vec<Value> = notes
                    .iter()
                    .map(|text| match author {
                        Some(a) => json!({ "text": text, "author": a }),
                        None => json!({ "text": text }),
                    })
                    .collect();
                let body = json!({ "notes": notes });
                c.call(Method::PUT, &path, &[], Some(&body)).await
            }
            ConversationCommand::Labels { id, labels } => {
                let path = format!("/v1/conversations/{}/labels", segment(id)?);
                let body = json!({ "labels": labels });
                c.call(Method::PUT, &path, &[], Some(&body)).await
            }
        },
        ManageCommand::Audit {
            target,
            action,
            paging,
            ..
        } => {
            let mut q = paging.query();
            push(&mut q, "target", target.as_ref());
            push(&mut q, "action", action.as_ref());
            c.list("/v1/audit", q, paging.all).await
        }
    }
}
