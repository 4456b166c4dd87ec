//! The `wagate` commands that talk to a gateway's management API (`/v1`), local or deployed:
//! `endpoints`, `deliveries`, `dlq`, `conversations`, `contacts`, `messages`, `campaigns`,
//! `sources`, `audit`. Each prints the API's JSON answer (pretty) on stdout; an error answer goes
//! to stderr as `status code: message` with a non-zero exit.

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

/// `wagate messages …`
#[derive(Debug, Subcommand, Clone)]
pub enum MessageCommand {
    /// Send a message through a source's provider: a text (`--text`), a template
    /// (`--template`), or any body of `POST /v1/messages` from a file (`--body`).
    Send {
        /// The source to send through.
        #[arg(long)]
        source_id: Option<String>,
        /// The recipient's phone number (or a WAHA chat id).
        #[arg(long)]
        to: Option<String>,
        /// The recipient's user id (Meta business-scoped user id, WAHA `…@lid`).
        #[arg(long)]
        user_id: Option<String>,
        /// A text message.
        #[arg(long, conflicts_with_all = ["template", "body"])]
        text: Option<String>,
        /// A template by name (Meta).
        #[arg(long, conflicts_with = "body")]
        template: Option<String>,
        /// The template's language code.
        #[arg(long, default_value = "en_US")]
        language: String,
        /// Count it in this campaign.
        #[arg(long)]
        campaign_id: Option<String>,
        /// A whole request body (JSON file; `-` reads standard input).
        #[arg(long)]
        body: Option<PathBuf>,
    },
    /// Mark a received message as read.
    Read {
        /// The received message's provider id.
        id: String,
        /// The source it came in on.
        #[arg(long)]
        source_id: String,
        /// Also show "typing…".
        #[arg(long)]
        typing: bool,
    },
}

impl MessageCommand {
    /// The body of `POST /v1/messages` the flags describe.
    fn send_body(&self) -> anyhow::Result<Value> {
        let Self::Send {
            source_id,
            to,
            user_id,
            text,
            template,
            language,
            campaign_id,
            body,
        } = self
        else {
            anyhow::bail!("not a send");
        };
        let mut value = match body {
            Some(path) => {
                let text = if path.as_os_str() == "-" {
                    std::io::read_to_string(std::io::stdin())?
                } else {
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?
                };
                serde_json::from_str(&text).context("the body is not JSON")?
            }
            None => match (text, template) {
                (Some(t), None) => json!({"type": "text", "text": {"body": t}}),
                (None, Some(name)) => json!({"type": "template",
                    "template": {"name": name, "language": {"code": language}}}),
                _ => anyhow::bail!("give --text, --template or --body"),
            },
        };
        let Some(object) = value.as_object_mut() else {
            anyhow::bail!("the body must be a JSON object");
        };
        for (key, given) in [
            ("source_id", source_id),
            ("to", to),
            ("user_id", user_id),
            ("campaign_id", campaign_id),
        ] {
            if let Some(v) = given {
                object.insert(key.into(), json!(v));
            }
        }
        Ok(value)
    }
}

/// `wagate campaigns …`
#[derive(Debug, Subcommand, Clone)]
pub enum CampaignCommand {
    /// Create a campaign (name it in sends with --campaign-id).
    Create {
        /// Its name.
        name: String,
        /// The source its messages go through (default: the first send's).
        #[arg(long)]
        source_id: Option<String>,
        /// Complete with what is known after this many hours (1–720).
        #[arg(long)]
        complete_after_hours: Option<u64>,
    },
    /// One campaign with its totals.
    Get { id: String },
    /// Campaigns, newest first.
    List {
        /// `open` (default) or `completed`.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
}

/// `wagate contacts …`
#[derive(Debug, Subcommand, Clone)]
pub enum ContactCommand {
    /// List contacts, newest first, or find one.
    List {
        /// Only this source's (with --phone, --user-id or --external-id: a direct look-up).
        #[arg(long)]
        source_id: Option<String>,
        /// The contact with this phone number, written any way (`+1 555 000 1111`,
        /// `15550001111@c.us`).
        #[arg(long)]
        phone: Option<String>,
        /// The contact with this user id (Meta business-scoped user id, WAHA `…@lid`).
        #[arg(long)]
        user_id: Option<String>,
        /// The contact with this external id.
        #[arg(long)]
        external_id: Option<String>,
        /// Only contacts with this tag.
        #[arg(long)]
        tag: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// One contact (a merged contact's id shows the contact it was merged into).
    Get { id: String },
    /// Change a contact's tags, stage, custom fields or external id (`contact.updated`).
    Update(ContactUpdate),
}

/// `wagate contacts update`: only what is given changes.
#[derive(Debug, Args, Clone, Default)]
pub struct ContactUpdate {
    pub id: String,
    /// The tags, comma-separated, replacing the current ones.
    #[arg(long, value_delimiter = ',', conflicts_with = "clear_tags")]
    pub tags: Option<Vec<String>>,
    /// Remove every tag.
    #[arg(long)]
    pub clear_tags: bool,
    /// The lifecycle stage.
    #[arg(long, conflicts_with = "clear_stage")]
    pub stage: Option<String>,
    /// Remove the stage.
    #[arg(long)]
    pub clear_stage: bool,
    /// A custom field, `name=value` (a value that is JSON is taken as JSON, else as text);
    /// repeatable.
    #[arg(long = "field", value_name = "NAME=VALUE")]
    pub fields: Vec<String>,
    /// Remove a custom field; repeatable.
    #[arg(long = "unset-field", value_name = "NAME")]
    pub unset_fields: Vec<String>,
    /// Your own id for the customer (unique per source).
    #[arg(long, conflicts_with = "clear_external_id")]
    pub external_id: Option<String>,
    /// Remove the external id.
    #[arg(long)]
    pub clear_external_id: bool,
}

impl ContactUpdate {
    /// The `PATCH /v1/contacts/{id}` body.
    pub fn body(&self) -> anyhow::Result<Value> {
        let mut body = serde_json::Map::new();
        if self.clear_tags {
            body.insert("tags".into(), json!([]));
        } else if let Some(tags) = &self.tags {
            body.insert("tags".into(), json!(tags));
        }
        if self.clear_stage {
            body.insert("stage".into(), Value::Null);
        } else if let Some(stage) = &self.stage {
            body.insert("stage".into(), json!(stage));
        }
        let mut fields = serde_json::Map::new();
        for f in &self.fields {
            let (name, value) = f
                .split_once('=')
                .with_context(|| format!("--field {f}: expected NAME=VALUE"))?;
            let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
            fields.insert(name.to_owned(), value);
        }
        for name in &self.unset_fields {
            fields.insert(name.clone(), Value::Null);
        }
        if !fields.is_empty() {
            body.insert("custom_fields".into(), Value::Object(fields));
        }
        if self.clear_external_id {
            body.insert("external_id".into(), Value::Null);
        } else if let Some(id) = &self.external_id {
            body.insert("external_id".into(), json!(id));
        }
        Ok(Value::Object(body))
    }
}

/// `wagate sources …`
#[derive(Debug, Subcommand, Clone)]
pub enum SourceCommand {
    /// List the webhook sources: provider, webhook path, how many secrets are set.
    List,
    /// Show one source (never its secrets).
    Get { id: String },
    /// Say whether the gateway accepts a captured provider request, and why not (missing or
    /// malformed header, wrong secret, a body changed on the way, wrong algorithm, another URL
    /// signed, a missing token). Give the capture as a file (request line optional, headers, a
    /// blank line, the body), or as `--header`s and `--body-file`.
    Diagnose {
        /// The source the request was sent to.
        id: String,
        /// The captured HTTP request, `-` for standard input.
        #[arg(long, conflicts_with_all = ["header", "body_file"])]
        file: Option<PathBuf>,
        /// A header of the request, `Name: value` (repeat for more).
        #[arg(long)]
        header: Vec<String>,
        /// The body of the request, byte for byte.
        #[arg(long)]
        body_file: Option<PathBuf>,
        /// The URL the provider called, with its query (Twilio signs it).
        #[arg(long)]
        url: Option<String>,
    },
}

impl SourceCommand {
    /// The `POST /v1/sources/{id}/diagnose` body of a `diagnose`.
    fn capture(
        file: Option<&PathBuf>,
        headers: &[String],
        body_file: Option<&PathBuf>,
        url: Option<&String>,
    ) -> anyhow::Result<Value> {
        use base64::Engine as _;
        let read = |path: &PathBuf| -> anyhow::Result<Vec<u8>> {
            if path.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                    .context("reading standard input")?;
                Ok(bytes)
            } else {
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))
            }
        };
        let mut body = match file {
            Some(path) => {
                let raw = String::from_utf8(read(path)?).map_err(|_| {
                    anyhow::anyhow!(
                        "{} is not UTF-8 text: give the headers with --header and the body with --body-file",
                        path.display()
                    )
                })?;
                json!({"raw": raw})
            }
            None => {
                let mut pairs = Vec::new();
                for header in headers {
                    let (name, value) = header
                        .split_once(':')
                        .with_context(|| format!("--header `{header}` is not `Name: value`"))?;
                    pairs.push(json!([name.trim(), value.trim()]));
                }
                let body = match body_file {
                    Some(path) => read(path)?,
                    None => Vec::new(),
                };
                json!({
                    "headers": pairs,
                    "body_base64": base64::engine::general_purpose::STANDARD.encode(body),
                })
            }
        };
        if let Some(url) = url {
            body["url"] = json!(url);
        }
        Ok(body)
    }
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
    /// Contacts: one per customer, with tags, stage, custom fields and your own id.
    Contacts {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: ContactCommand,
    },
    /// Send messages through a source's provider; mark received ones as read.
    Messages {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: MessageCommand,
    },
    /// Campaigns and their totals.
    Campaigns {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: CampaignCommand,
    },
    /// Webhook sources, and why the gateway accepts or refuses a captured request.
    Sources {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: SourceCommand,
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
            | Self::Contacts { api, .. }
            | Self::Messages { api, .. }
            | Self::Campaigns { api, .. }
            | Self::Sources { api, .. }
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
        ManageCommand::Contacts { command, .. } => match command {
            ContactCommand::List {
                source_id,
                phone,
                user_id,
                external_id,
                tag,
                paging,
            } => {
                let mut q = paging.query();
                push(&mut q, "source_id", source_id.as_ref());
                push(&mut q, "phone", phone.as_ref());
                push(&mut q, "user_id", user_id.as_ref());
                push(&mut q, "external_id", external_id.as_ref());
                push(&mut q, "tag", tag.as_ref());
                c.list("/v1/contacts", q, paging.all).await
            }
            ContactCommand::Get { id } => {
                let path = format!("/v1/contacts/{}", segment(id)?);
                c.call(Method::GET, &path, &[], None).await
            }
            ContactCommand::Update(update) => {
                let path = format!("/v1/contacts/{}", segment(&update.id)?);
                let body = update.body()?;
                c.call(Method::PATCH, &path, &[], Some(&body)).await
            }
        },
        ManageCommand::Messages { command, .. } => match command {
            MessageCommand::Send { .. } => {
                let body = command.send_body()?;
                c.call(Method::POST, "/v1/messages", &[], Some(&body)).await
            }
            MessageCommand::Read {
                id,
                source_id,
                typing,
            } => {
                let path = format!("/v1/messages/{}/read", segment(id)?);
                let body = json!({"source_id": source_id, "typing_indicator": typing});
                c.call(Method::POST, &path, &[], Some(&body)).await
            }
        },
        ManageCommand::Campaigns { command, .. } => match command {
            CampaignCommand::Create {
                name,
                source_id,
                complete_after_hours,
            } => {
                let mut body = json!({"name": name});
                if let Some(s) = source_id {
                    body["source_id"] = json!(s);
                }
                if let Some(h) = complete_after_hours {
                    body["complete_after_hours"] = json!(h);
                }
                c.call(Method::POST, "/v1/campaigns", &[], Some(&body))
                    .await
            }
            CampaignCommand::Get { id } => {
                let path = format!("/v1/campaigns/{}", segment(id)?);
                c.call(Method::GET, &path, &[], None).await
            }
            CampaignCommand::List { status, paging } => {
                let mut q = paging.query();
                push(&mut q, "status", status.as_ref());
                c.list("/v1/campaigns", q, paging.all).await
            }
        },
        ManageCommand::Sources { command, .. } => match command {
            SourceCommand::List => c.call(Method::GET, "/v1/sources", &[], None).await,
            SourceCommand::Get { id } => {
                let path = format!("/v1/sources/{}", segment(id)?);
                c.call(Method::GET, &path, &[], None).await
            }
            SourceCommand::Diagnose {
                id,
                file,
                header,
                body_file,
                url,
            } => {
                let body = SourceCommand::capture(
                    file.as_ref(),
                    header,
                    body_file.as_ref(),
                    url.as_ref(),
                )?;
                post(format!("/v1/sources/{}/diagnose", segment(id)?), Some(body)).await
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: ManageCommand,
    }

    fn update(args: &[&str]) -> Value {
        let cli = Cli::try_parse_from(["wagate", "contacts", "update"].iter().chain(args)).unwrap();
        match cli.command {
            ManageCommand::Contacts {
                command: ContactCommand::Update(u),
                ..
            } => u.body().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_diagnosis_sends_the_capture_as_text_or_its_parts_byte_for_byte() {
        let dir = std::env::temp_dir().join(format!("wagate-capture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let raw = dir.join("capture.http");
        std::fs::write(&raw, "POST /webhooks/x HTTP/1.1\r\nX-A: 1\r\n\r\n{}").unwrap();
        let body = SourceCommand::capture(Some(&raw), &[], None, None).unwrap();
        assert_eq!(
            body,
            json!({"raw": "POST /webhooks/x HTTP/1.1\r\nX-A: 1\r\n\r\n{}"})
        );
        let bytes = dir.join("body.bin");
        std::fs::write(&bytes, [0xff, b'{', b'}']).unwrap();
        let headers = ["X-Twilio-Signature: a=b=".to_owned()];
        let url = "https://gw.example.com/webhooks/x".to_owned();
        let body = SourceCommand::capture(None, &headers, Some(&bytes), Some(&url)).unwrap();
        assert_eq!(
            body,
            json!({"headers": [["X-Twilio-Signature", "a=b="]], "body_base64": "/3t9",
                   "url": "https://gw.example.com/webhooks/x"})
        );
        // Not text: the parts are asked for instead.
        let err = SourceCommand::capture(Some(&bytes), &[], None, None).unwrap_err();
        assert!(err.to_string().contains("--body-file"), "{err}");
        let err = SourceCommand::capture(None, &["no colon".into()], None, None).unwrap_err();
        assert!(err.to_string().contains("Name: value"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn contacts_update_sends_only_what_it_is_given() {
        assert_eq!(update(&["ctc_1"]), json!({}));
        assert_eq!(
            update(&[
                "ctc_1",
                "--tags",
                "vip,new",
                "--stage",
                "lead",
                "--field",
                "plan=gold",
                "--field",
                "seats=3",
                "--field",
                r#"address={"city":"Lisbon"}"#,
                "--unset-field",
                "old",
                "--external-id",
                "crm-1",
            ]),
            json!({
                "tags": ["vip", "new"],
                "stage": "lead",
                "custom_fields": {"plan": "gold", "seats": 3, "address": {"city": "Lisbon"}, "old": null},
                "external_id": "crm-1",
            })
        );
        assert_eq!(
            update(&[
                "ctc_1",
                "--clear-tags",
                "--clear-stage",
                "--clear-external-id"
            ]),
            json!({"tags": [], "stage": null, "external_id": null})
        );
        assert!(
            Cli::try_parse_from([
                "wagate",
                "contacts",
                "update",
                "x",
                "--stage",
                "a",
                "--clear-stage"
            ])
            .is_err()
        );
    }
}
