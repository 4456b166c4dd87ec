//! The OpenAPI 3.1 document of the management API, generated from the route table below and
//! the request and response types (schemars). A test checks that the router serves every route
//! of the table and that `schema/openapi.json` is current (`WAGATE_BLESS=1` rewrites it).

use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::audit::AuditEntry;
use super::{
    CloseConversation, ConversationView, CreateEndpoint, DeliveryView, EndpointView,
    RedriveRequest, RotateSecret, SetLabels, SetNotes, TestDelivery, TransferConversation,
    UpdateEndpoint,
};

/// One documented route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path template (`{id}` parameters).
    pub path: &'static str,
    /// `operationId`.
    pub operation: &'static str,
    /// One line for humans.
    pub summary: &'static str,
    /// Request body schema name, if any.
    pub request: Option<&'static str>,
    /// Success status.
    pub status: u16,
    /// Success body: a schema name, `page:Name` for a list of them, or none (204).
    pub response: Option<&'static str>,
    /// Query parameters: name, description, required.
    pub query: &'static [(&'static str, &'static str, bool)],
}

const PAGING: [(&str, &str, bool); 2] = [
    ("limit", "Items per page, 1 to 100 (default 20).", false),
    ("cursor", "The `next_cursor` of the previous page.", false),
];

/// Every route of the API.
pub const ROUTES: &[Route] = &[
    Route {
        method: "post",
        path: "/v1/endpoints",
        operation: "createEndpoint",
        summary: "Create an endpoint; the answer holds its whsec_ secret, shown only here.",
        request: Some("CreateEndpoint"),
        status: 201,
        response: Some("CreatedEndpoint"),
        query: &[],
    },
    Route {
        method: "get",
        path: "/v1/endpoints",
        operation: "listEndpoints",
        summary: "List endpoints by id.",
        request: None,
        status: 200,
        response: Some("page:EndpointView"),
        query: &PAGING,
    },
    Route {
        method: "get",
        path: "/v1/endpoints/{id}",
        operation: "getEndpoint",
        summary: "Show an endpoint.",
        request: None,
        status: 200,
        response: Some("EndpointView"),
        query: &[],
    },
    Route {
        method: "patch",
        path: "/v1/endpoints/{id}",
        operation: "updateEndpoint",
        summary: "Change some fields of an endpoint.",
        request: Some("UpdateEndpoint"),
        status: 200,
        response: Some("EndpointView"),
        query: &[],
    },
    Route {
        method: "delete",
        path: "/v1/endpoints/{id}",
        operation: "deleteEndpoint",
        summary: "Delete an endpoint.",
        request: None,
        status: 204,
        response: None,
        query: &[],
    },
    Route {
        method: "post",
        path: "/v1/endpoints/{id}/rotate-secret",
        operation: "rotateEndpointSecret",
        summary: "New signing secret; the old one signs too for the grace period.",
        request: Some("RotateSecret"),
        status: 200,
        response: Some("CreatedEndpoint"),
        query: &[],
    },
    Route {
        method: "post",
        path: "/v1/endpoints/{id}/enable",
        operation: "enableEndpoint",
        summary: "Turn deliveries on.",
        request: None,
        status: 200,
        response: Some("EndpointView"),
        query: &[],
    },
    Route {
        method: "post",
        path: "/v1/endpoints/{id}/disable",
        operation: "disableEndpoint",
        summary: "Turn deliveries off.",
        request: None,
        status: 200,
        response: Some("EndpointView"),
        query: &[],
    },
    Route {
        method: "post",
        path: "/v1/endpoints/{id}/test",
        operation: "testEndpoint",
        summary: "Send one realistic event of a chosen type through the delivery path; answers the attempt.",
        request: Some("TestDelivery"),
        status: 200,
        response: Some("TestResult"),
        query: &[],
    },
    Route {
        method: "post",
        path: "/v1/endpoints/{id}/recover",
        operation: "recoverEndpoint",
        summary: "Send again the endpoint's failed deliveries created since a time.",
        request: None,
        status: 202,
        response: Some("Recovered"),
        query: &[("since", "RFC 3339 time.", true)],
    },
    Route {
        method: "get",
        path: "/v1/deliveries",
        operation: "listDeliveries",
        summary: "List deliveries, newest first.",
        request: None,
        status: 200,
        response: Some("page:DeliveryView"),
        query: &[
            ("endpoint_id", "Only this endpoint's.", false),
            (
                "status",
                "retrying, delivered, dead_lettered, endpoint_disabled or skipped.",
                false,
            ),
            ("event_type", "Only this event type.", false),
            ("since", "Created at or after (RFC 3339).", false),
            ("until", "Created before (RFC 3339).", false),
            PAGING[0],
            PAGING[1],
        ],
    },
    Route {
        method: "get",
        path: "/v1/deliveries/{id}",
        operation: "getDelivery",
        summary: "Show a delivery with its attempts.",
        request: None,
        status: 200,
        response: Some("DeliveryView"),
        query: &[],
    },
    Route {
        method: "post",
        path: "/v1/deliveries/{id}/retry",
        operation: "retryDelivery",
        summary: "Send a delivery again (same id and body).",
        request: None,
        status: 202,
        response: Some("DeliveryView"),
        query: &[],
    },
    Route {
        method: "post",
        path: "/v1/deliveries/redrive",
        operation: "redriveDeliveries",
        summary: "Move dead-lettered deliveries back to the delivery queue.",
        request: Some("RedriveRequest"),
        status: 202,
        response: Some("RedriveReport"),
        query: &[],
    },
    Route {
        method: "get",
        path: "/v1/conversations",
        operation: "listConversations",
        summary: "List conversations, most recent first (active ones by the minute of their last activity).",
        request: None,
        status: 200,
        response: Some("page:ConversationView"),
        query: &[
            ("status", "active (default) or ended.", false),
            ("source_id", "Only this source's.", false),
            PAGING[0],
            PAGING[1],
        ],
    },
    Route {
        method: "get",
        path: "/v1/conversations/{id}",
        operation: "getConversation",
        summary: "Show a conversation.",
        request: None,
        status: 200,
        response: Some("ConversationView"),
        query: &[],
    },
    Route {
        method: "post",
        path: "/v1/conversations/{id}/close",
        operation: "closeConversation",
        summary: "End a conversation; emits whatsapp.conversation.ended.",
        request: Some("CloseConversation"),
        status: 200,
        response: Some("ConversationView"),
        query: &[],
    },
    Route {
        method: "post",
        path: "/v1/conversations/{id}/transfer",
        operation: "transferConversation",
        summary: "Hand a conversation to an agent or team; emits whatsapp.conversation.transferred.",
        request: Some("TransferConversation"),
        status: 202,
        response: Some("Transferred"),
        query: &[],
    },
    Route {
        method: "put",
        path: "/v1/conversations/{id}/labels",
        operation: "setConversationLabels",
        summary: "Replace a conversation's labels.",
        request: Some("SetLabels"),
        status: 200,
        response: Some("ConversationView"),
        query: &[],
    },
    Route {
        method: "put",
        path: "/v1/conversations/{id}/notes",
        operation: "setConversationNotes",
        summary: "Replace a conversation's notes.",
        request: Some("SetNotes"),
        status: 200,
        response: Some("ConversationView"),
        query: &[],
    },
    Route {
        method: "get",
        path: "/v1/audit",
        operation: "listAudit",
        summary: "List the changes made through this API (who: the API key's id; what; when), newest first.",
        request: None,
        status: 200,
        response: Some("page:AuditEntry"),
        query: &[
            (
                "target",
                "Only changes of this endpoint, delivery or conversation id.",
                false,
            ),
            ("action", "Only this action (e.g. endpoint.updated).", false),
            PAGING[0],
            PAGING[1],
        ],
    },
];

fn defs_for<F: FnOnce(&mut SchemaGenerator)>(contract: Contract, add: F) -> Map<String, Value> {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.contract = contract;
        })
        .into_generator();
    add(&mut generator);
    generator.take_definitions(true)
}

/// Adds `T` (and what it refers to) to the generator's definitions.
fn register<T: JsonSchema>(g: &mut SchemaGenerator) {
    let _reference = g.subschema_for::<T>();
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The document.
pub fn document() -> Value {
    let mut schemas = defs_for(Contract::Serialize, |g| {
        register::<EndpointView>(g);
        register::<DeliveryView>(g);
        register::<ConversationView>(g);
        register::<AuditEntry>(g);
    });
    for (name, value) in defs_for(Contract::Deserialize, |g| {
        register::<CreateEndpoint>(g);
        register::<UpdateEndpoint>(g);
        register::<RotateSecret>(g);
        register::<TestDelivery>(g);
        register::<RedriveRequest>(g);
        register::<CloseConversation>(g);
        register::<TransferConversation>(g);
        register::<SetLabels>(g);
        register::<SetNotes>(g);
    }) {
        schemas.entry(name).or_insert(value);
    }
    let extra = [
        (
            "Error",
            json!({
                "type": "object", "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string", "description": "Stable machine-readable code."},
                    "message": {"type": "string"},
                    "details": {"type": "object", "description": "E.g. `field` for 422."}}}}
            }),
        ),
        (
            "CreatedEndpoint",
            json!({"allOf": [reference("EndpointView"), {
            "type": "object", "required": ["secret"],
            "properties": {"secret": {"type": "string", "pattern": "^whsec_", "description": "The signing secret; shown only in this answer."}}}]}),
        ),
        (
            "TestResult",
            json!({"type": "object", "required": ["delivery_id", "event_type", "result"], "properties": {
            "delivery_id": {"type": "string"},
            "event_type": {"type": "string"},
            "result": {"enum": ["delivered", "failed", "endpoint_disabled", "skipped"]},
            "attempt": {"type": ["object", "null"]}}}),
        ),
        (
            "Recovered",
            json!({"type": "object", "required": ["recovered"], "properties": {"recovered": {"type": "integer", "minimum": 0}}}),
        ),
        (
            "RedriveReport",
            json!({"type": "object", "required": ["moved", "kept", "unreadable", "remaining"], "properties": {
            "moved": {"type": "integer", "minimum": 0}, "kept": {"type": "integer", "minimum": 0},
            "unreadable": {"type": "integer", "minimum": 0},
            "remaining": {"type": ["integer", "null"], "minimum": 0, "description": "About how many messages the dead-letter queue still holds (SQS's estimate, lagging up to a minute)."}}}),
        ),
        (
            "Transferred",
            json!({"type": "object", "required": ["event_id", "type", "conversation"], "properties": {
            "event_id": {"type": "string"}, "type": {"const": "whatsapp.conversation.transferred"},
            "conversation": reference("ConversationView")}}),
        ),
    ];
    for (name, value) in extra {
        schemas.insert(name.to_owned(), value);
    }
    // Filters and headers are checked in code against lists the derive cannot see: spell them
    // out so the document is exact.
    let filters = endpoint_filters();
    let header_names = json!({"pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"});
    let header_values = json!({"type": "string", "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$"});
    for name in ["CreateEndpoint", "UpdateEndpoint"] {
        if let Some(props) = schemas.get_mut(name).and_then(|s| s.get_mut("properties")) {
            props["event_types"]["items"] = json!({"enum": filters});
            props["headers"]["propertyNames"] = header_names.clone();
            props["headers"]["additionalProperties"] = header_values.clone();
        }
    }
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths.entry(route.path).or_insert_with(|| json!({}));
        entry[route.method] = operation(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "wagate management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Endpoints, deliveries and conversations of a wagate installation, and the audit trail of changes made here. Every request carries X-API-Key; every POST may carry Idempotency-Key (same key and body within a day: the first answer again; another body or a call while the first runs: 409)."
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
            "schemas": schemas
        }
    })
}

fn operation(route: &Route) -> Value {
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    parameters.extend(route.query.iter().map(|(name, description, required)| {
        let schema = match *name {
            "limit" => json!({"type": "integer", "minimum": 1, "maximum": 100}),
            "since" | "until" => json!({"type": "string", "format": "date-time"}),
            "status" if route.path == "/v1/conversations" => json!({"enum": ["active", "ended"]}),
            "status" => json!({"enum": ["retrying", "delivered", "dead_lettered", "endpoint_disabled", "skipped"]}),
            "event_type" => reference("EventType"),
            "cursor" => json!({"type": "string", "pattern": "^([A-Za-z0-9_-]{4})*([A-Za-z0-9_-]{2,3})?$", "minLength": 2}),
            "source_id" | "endpoint_id" => json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}),
            _ => json!({"type": "string"}),
        };
        json!({"name": name, "in": "query", "required": required, "description": description, "schema": schema})
    }));
    if route.method == "post" {
        parameters.push(
            json!({"name": "Idempotency-Key", "in": "header", "required": false,
            "description": "1 to 255 characters; replays the first answer for the same body.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255}}),
        );
    }
    let error = |description: &str| json!({"description": description, "content": {"application/json": {"schema": reference("Error")}}});
    let mut responses = Map::new();
    let success = match route.response {
        None => json!({"description": "Done."}),
        Some(name) => {
            let schema = match name.strip_prefix("page:") {
                Some(item) => {
                    json!({"type": "object", "required": ["data", "next_cursor"], "properties": {
                    "data": {"type": "array", "items": reference(item)},
                    "next_cursor": {"type": ["string", "null"]}}})
                }
                None => reference(name),
            };
            json!({"description": "Done.", "content": {"application/json": {"schema": schema}}})
        }
    };
    let mut success = success;
    if let Some(links) = links(route) {
        success["links"] = links;
    }
    responses.insert(route.status.to_string(), success);
    responses.insert(
        "400".into(),
        error("Malformed request (bad JSON, bad cursor)."),
    );
    responses.insert("401".into(), error("Missing or wrong X-API-Key."));
    if route.path.contains('{') {
        responses.insert("404".into(), error("No such item."));
    }
    if route.method != "get" || !route.query.is_empty() {
        responses.insert(
            "409".into(),
            error("Conflict (changed meanwhile, already done, or Idempotency-Key reuse)."),
        );
        responses.insert("413".into(), error("Body too large."));
        responses.insert(
            "422".into(),
            error("Invalid field; `details.field` names it."),
        );
    }
    responses.insert(
        "429".into(),
        json!({"description": "Too many requests: API Gateway throttles the management API (AdminRateLimit, AdminBurstLimit).",
               "content": {"application/json": {"schema": {"type": "object"}}}}),
    );
    responses.insert("503".into(), error("Storage unavailable; retry."));
    let mut op = json!({
        "operationId": route.operation,
        "summary": route.summary,
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(name) = route.request {
        // Routes whose every field is optional also take no body at all.
        let optional = matches!(
            name,
            "UpdateEndpoint"
                | "RotateSecret"
                | "TestDelivery"
                | "RedriveRequest"
                | "CloseConversation"
        );
        op["requestBody"] = json!({"required": !optional, "content": {"application/json": {"schema": reference(name)}}});
    }
    op
}

/// OpenAPI links from a route that yields ids (a create answers one item, a list a page) to
/// the routes under `{path}/{id}`: clients and stateful test tools follow them to real ids.
fn links(route: &Route) -> Option<Value> {
    if route.path.contains('{') {
        return None;
    }
    let id = match (route.method, route.response) {
        ("post", Some(_)) => "$response.body#/id",
        ("get", Some(r)) if r.starts_with("page:") => "$response.body#/data/0/id",
        _ => return None,
    };
    let below = format!("{}/{{id}}", route.path);
    let links: Map<String, Value> = ROUTES
        .iter()
        .filter(|r| r.path == below || r.path.starts_with(&format!("{below}/")))
        .map(|r| {
            (
                r.operation.to_owned(),
                json!({"operationId": r.operation, "parameters": {"id": id}}),
            )
        })
        .collect();
    (!links.is_empty()).then_some(Value::Object(links))
}

/// The document as committed (`schema/openapi.json`).
pub fn document_json() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// The methods the documented routes allow on the path `segments` (for `Allow`).
pub fn allowed_methods(segments: &[&str]) -> String {
    // A literal segment beats a parameter (`/v1/deliveries/redrive` is not `/v1/deliveries/{id}`).
    let matching: Vec<(usize, &Route)> = ROUTES
        .iter()
        .filter_map(|r| {
            let template: Vec<&str> = r.path.split('/').skip(1).collect();
            let fits = template.len() == segments.len()
                && template
                    .iter()
                    .zip(segments)
                    .all(|(t, s)| t.starts_with('{') || t == s);
            fits.then(|| (template.iter().filter(|t| !t.starts_with('{')).count(), r))
        })
        .collect();
    let best = matching.iter().map(|(n, _)| *n).max().unwrap_or(0);
    let mut methods: Vec<String> = matching
        .iter()
        .filter(|(n, _)| *n == best)
        .map(|(_, r)| r.method.to_uppercase())
        .collect();
    methods.sort();
    methods.dedup();
    methods.join(", ")
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
