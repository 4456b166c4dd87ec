//! The OpenAPI 3.1 document of the management API, generated from the router: utoipa reads the
//! routes, parameters, bodies and statuses from each handler's `#[utoipa::path]`, and every
//! component schema comes from the types' schemars derives (`documented!` bridges the two, so
//! there is one schema source). A test checks that `schema/openapi.json` is current
//! (`WAGATE_BLESS=1` rewrites it) and valid OpenAPI 3.1.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::JsonSchema;
use schemars::generate::{Contract, SchemaSettings};
use serde_json::{Map, Value, json};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, RefOr, Required,
    ServerBuilder,
};
use utoipa::{IntoParams, IntoResponses, ToSchema};

use super::audit::{AuditEntry, AuditPage};
use super::campaigns::{CampaignPage, CreateCampaign};
use super::contacts::{ContactPage, ContactView, UpdateContact};
use super::conversations::{ConversationPage, HandoffRequested, RequestHandoff};
use super::deliveries::DeliveryPage;
use super::endpoints::EndpointPage;
use super::messages::{MarkedRead, ReadRequest, SentMessage};
use super::sources::{SourceList, SourceView, VerificationKind};
use super::stats::{EndpointTrouble, Stats, StatsFigures, StatsStep};
use super::{
    CloseConversation, ConversationView, CreateEndpoint, CreatedEndpoint, DeliveryView,
    EndpointView, ErrorBody, Recovered, RedriveReport, RedriveRequest, RotateSecret, SetLabels,
    SetNotes, TestDelivery, TestResult, TransferConversation, Transferred, UpdateEndpoint,
};
use crate::delivery::record::DeliveryStatus;
use crate::model::{Campaign, CampaignStatus, ConversationStatus, EventType, StoredMedia};
use crate::pipeline::ingest::diagnose::{
    CapturedHeaders, CapturedRequest, Diagnosis, SecretMatch, Verdict,
};
use crate::send::SendMessage;

/// A schemars schema as a utoipa schema, unchanged: an object schema with no keyword of its
/// own whose extensions are every keyword schemars wrote (utoipa writes extensions as they are).
fn verbatim(schema: Value) -> RefOr<Schema> {
    let keywords = match schema {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .extensions(Some(keywords.into_iter().collect()))
            .build(),
    ))
}

/// `T`'s schema and those of the types it refers to, as schemars writes them for `contract`,
/// with references into `#/components/schemas`.
fn component<T: JsonSchema>(contract: Contract) -> (Value, Vec<(String, RefOr<Schema>)>) {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.contract = contract;
        })
        .into_generator();
    let reference = generator.subschema_for::<T>();
    let mut definitions = generator.take_definitions(true);
    let own = definitions
        .remove(T::schema_name().as_ref())
        .unwrap_or_else(|| reference.to_value());
    let others = definitions
        .into_iter()
        .map(|(name, schema)| (name, verbatim(schema)))
        .collect();
    (own, others)
}

/// Implements utoipa's `ToSchema` for types that derive schemars' `JsonSchema`: utoipa names
/// and refers to them, schemars writes them. Answers are documented as serialized, request
/// bodies and query values as deserialized (defaults and optional fields differ).
macro_rules! documented {
    ($contract:ident: $($t:ty),+ $(,)?) => {$(
        impl utoipa::PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                verbatim(component::<$t>(Contract::$contract).0)
            }
        }

        impl ToSchema for $t {
            fn name() -> Cow<'static, str> {
                <$t as JsonSchema>::schema_name()
            }

            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                schemas.extend(component::<$t>(Contract::$contract).1);
            }
        }
    )+};
}

documented!(Serialize:
    EndpointView, CreatedEndpoint, EndpointPage, DeliveryView, DeliveryPage, Recovered,
    RedriveReport, TestResult, ConversationView, ConversationPage, Transferred, AuditEntry,
    AuditPage, ErrorBody, EventType, DeliveryStatus, ConversationStatus, Campaign, CampaignPage,
    CampaignStatus, HandoffRequested,
);
documented!(Deserialize:
    CreateEndpoint, UpdateEndpoint, RotateSecret, TestDelivery, RedriveRequest, CloseConversation,
    TransferConversation, SetLabels, SetNotes, CreateCampaign, RequestHandoff,
);

documented!(Serialize: ContactView, ContactPage, SentMessage, MarkedRead);
documented!(Deserialize: SendMessage, ReadRequest);
documented!(Deserialize: UpdateContact);
documented!(Serialize: StoredMedia);
documented!(Serialize: SourceView, SourceList, Diagnosis, Verdict, SecretMatch, VerificationKind);
documented!(Deserialize: CapturedRequest, CapturedHeaders);
documented!(Serialize: Stats, StatsStep, StatsFigures, EndpointTrouble);

/// `Idempotency-Key`, which every POST takes.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdempotencyKey;

impl IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "1 to 255 characters; replays the first answer for the same body.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(255)),
                ))
                .build(),
        ]
    }
}

/// The error answers every route may give, and those of routes that name an item (404) or
/// change something or take parameters (409, 413, 422).
fn errors(item: bool, change: bool) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        ErrorBody::name(),
                    ))))
                    .build(),
            )
            .build()
    };
    let mut out = BTreeMap::new();
    let mut add = |status: &str, description: &str| {
        out.insert(status.to_owned(), RefOr::T(error(description)));
    };
    add("400", "Malformed request (bad JSON, bad cursor).");
    add("401", "Missing or wrong X-API-Key.");
    if item {
        add("404", "No such item.");
    }
    if change {
        add(
            "409",
            "Conflict (changed meanwhile, already done, or Idempotency-Key reuse).",
        );
        add("413", "Body too large.");
        add("422", "Invalid field; `details.field` names it.");
    }
    add("503", "Storage unavailable; retry.");
    out.insert(
        "429".into(),
        RefOr::T(
            ResponseBuilder::new()
                .description(
                    "Too many requests: API Gateway throttles the management API (AdminRateLimit, AdminBurstLimit).",
                )
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                        .build(),
                )
                .build(),
        ),
    );
    out
}

/// Errors of a route that names no item, reads no parameters and changes nothing.
pub(super) struct ReadErrors;
/// Errors of a route that names an item and changes nothing.
pub(super) struct ItemErrors;
/// Errors of a route that changes something or reads parameters, but names no item.
pub(super) struct ChangeErrors;
/// Errors of a route that changes a named item.
pub(super) struct ItemChangeErrors;

impl IntoResponses for ReadErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        errors(false, false)
    }
}

impl IntoResponses for ItemErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        errors(true, false)
    }
}

impl IntoResponses for ChangeErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        errors(false, true)
    }
}

impl IntoResponses for ItemChangeErrors {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        errors(true, true)
    }
}

/// The document the routes are added to: what it is about, and the `X-API-Key` scheme.
pub(super) fn base() -> OpenApi {
    let mut schemas = Vec::new();
    ErrorBody::schemas(&mut schemas);
    let components = ComponentsBuilder::new()
        .schema(
            ErrorBody::name(),
            <ErrorBody as utoipa::PartialSchema>::schema(),
        )
        .schemas_from_iter(schemas)
        .security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("wagate management API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Endpoints, deliveries and conversations of a wagate installation, and the audit trail of changes made here. Every request carries X-API-Key; every POST may carry Idempotency-Key (same key and body within a day: the first answer again; another body or a call while the first runs: 409).",
                ))
                .build(),
        )
        .servers(Some([ServerBuilder::new().url("/").build()]))
        .security(Some([SecurityRequirement::new(
            "apiKey",
            Vec::<String>::new(),
        )]))
        .components(Some(components))
        .build()
}

/// The document, from the router's routes.
pub fn document() -> Value {
    let openapi = super::http::routes().into_openapi();
    let mut doc = serde_json::to_value(&openapi).unwrap_or_else(|_| json!({}));
    doc["openapi"] = json!("3.1.0");
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for op in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in op.values_mut() {
                optional_body(op);
            }
        }
        add_links(paths);
    }
    doc
}

/// A handler's `request_body = Option<T>` (routes whose every field is optional also take no
/// body at all): utoipa writes it as `T` or `null`, but a `null` body is refused; what it means
/// is a body that may be left out.
fn optional_body(op: &mut Value) {
    let Some(body) = op.get_mut("requestBody") else {
        return;
    };
    let Some(schema) = body.pointer_mut("/content/application~1json/schema") else {
        return;
    };
    let inner = match schema
        .get("oneOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        Some([null, inner]) if *null == json!({"type": "null"}) => inner.clone(),
        _ => return,
    };
    *schema = inner;
    body["required"] = json!(false);
}

/// OpenAPI links from a route that yields ids (a create answers one item, a list a page) to
/// the routes under `{path}/{id}`: clients and stateful test tools follow them to real ids.
fn add_links(paths: &mut Map<String, Value>) {
    let operations: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flat_map(|methods| methods.values())
                .filter_map(|op| op.get("operationId")?.as_str())
                .map(move |id| (path.clone(), id.to_owned()))
        })
        .collect();
    for (path, item) in paths.iter_mut() {
        if path.contains('{') {
            continue;
        }
        let below = format!("{path}/{{id}}");
        let targets: Vec<&String> = operations
            .iter()
            .filter(|(p, _)| *p == below || p.starts_with(&format!("{below}/")))
            .map(|(_, id)| id)
            .collect();
        let Some(methods) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in methods.iter_mut() {
            let Some((_, success)) = op
                .get_mut("responses")
                .and_then(Value::as_object_mut)
                .and_then(|r| r.iter_mut().find(|(status, _)| status.starts_with('2')))
            else {
                continue;
            };
            let schema = success
                .pointer("/content/application~1json/schema/$ref")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let id = match method.as_str() {
                "post" if !schema.is_empty() => "$response.body#/id",
                "get" if schema.ends_with("Page") => "$response.body#/data/0/id",
                _ => continue,
            };
            let links: Map<String, Value> = targets
                .iter()
                .map(|op| {
                    (
                        (*op).clone(),
                        json!({"operationId": op, "parameters": {"id": id}}),
                    )
                })
                .collect();
            if !links.is_empty() {
                success["links"] = Value::Object(links);
            }
        }
    }
}

/// The document as committed (`schema/openapi.json`).
pub fn document_json() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// Every accepted event type filter: `*`, a wildcard for every dotted prefix of a type
/// (`whatsapp.*`, `whatsapp.message.*`), and each type.
pub fn endpoint_filters() -> Vec<String> {
    let mut filters = vec!["*".to_owned()];
    for t in crate::model::EventType::ALL {
        let name = t.as_str();
        for (i, _) in name.match_indices('.') {
            let wildcard = format!("{}*", &name[..=i]);
            if !filters.contains(&wildcard) {
                filters.push(wildcard);
            }
        }
        filters.push(name.to_owned());
    }
    filters
}
