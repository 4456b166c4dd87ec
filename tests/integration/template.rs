//! `template.yaml` sets every environment variable each function reads, and nothing it does not.

use tests::repo_root;

/// The text of resource `name` in the template: its line and the more-indented lines after it.
fn resource(template: &str, name: &str) -> String {
    let header = format!("  {name}:");
    let mut lines = template.lines().skip_while(|l| *l != header);
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("{name} missing from template.yaml"));
    let body: Vec<&str> = lines
        .take_while(|l| l.is_empty() || l.starts_with("   "))
        .collect();
    format!("{first}\n{}", body.join("\n"))
}

/// The variable names under `Environment: Variables:` of a function resource.
fn variables(function: &str) -> Vec<String> {
    let block = function.split("Variables:\n").nth(1).unwrap_or_default();
    block
        .lines()
        .take_while(|l| l.starts_with("          "))
        .filter(|l| !l.starts_with("           "))
        .filter_map(|l| l.trim().split(':').next().map(str::to_owned))
        .collect()
}

#[test]
fn every_function_gets_exactly_the_variables_its_config_reads() {
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let cases: [(&str, &[&str]); 8] = [
        ("IngestFunction", ingest::Config::VARIABLES),
        ("TrackFunction", track::Config::VARIABLES),
        ("SweepFunction", sweep::Config::VARIABLES),
        ("FanoutFunction", fanout::Config::VARIABLES),
        ("DeliverFunction", deliver::Config::VARIABLES),
        ("BufferFunction", buffer::Config::VARIABLES),
        ("AdminFunction", admin::Config::VARIABLES),
        ("MediaFunction", media::Config::VARIABLES),
    ];
    for (name, expected) in cases {
        let mut got = variables(&resource(&template, name));
        let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{name}");
    }
}

/// A parameter's `Default`, unquoted.
fn default_of(template: &str, parameter: &str) -> String {
    resource(template, parameter)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Default: "))
        .map(|d| d.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("{parameter} has no default"))
}

/// The JSON objects a function's inline `WAGATE_SOURCES` is joined from, as written (one `!Sub`
/// per source, `${...}` still in them).
fn source_entries(function: &str) -> Vec<String> {
    function
        .lines()
        .filter_map(|l| {
            let entry = l
                .trim()
                .trim_start_matches("- ")
                .trim_start_matches("!Sub ");
            entry
                .starts_with("'{\"id\":")
                .then(|| entry.trim_matches('\'').to_owned())
        })
        .collect()
}

/// `text` with every `${Name}` replaced by `value(Name)`, as `!Sub` does.
fn substitute(text: &str, value: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let end = start + rest[start..].find('}').unwrap();
        out.push_str(&rest[..start]);
        out.push_str(&value(&rest[start + 2..end]));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The JSON the deploy parameters build is JSON `parse_sources` accepts: every provider for
/// ingest (comma-separated secrets split, Twilio's `public_url` only when given), and for media
/// and admin only the providers that can send.
#[test]
fn the_source_parameters_build_sources_the_functions_accept() {
    use shared::model::Provider;
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let ingest = resource(&template, "IngestFunction");
    let public_url_field = ingest
        .lines()
        .find_map(|l| l.split_once("PublicUrl: !If [HasTwilioPublicUrl, !Sub '"))
        .and_then(|(_, rest)| rest.split('\'').next())
        .expect("the Twilio entry adds public_url under HasTwilioPublicUrl");
    for public_url in [None, Some("https://wa.example.com/webhooks/twilio")] {
        let value = |name: &str| match name {
            "PublicUrl" => public_url
                .map(|url| public_url_field.replace("${TwilioPublicUrl}", url))
                .unwrap_or_default(),
            id if id.ends_with("SourceId") => default_of(&template, id),
            secret => format!("{secret}-1,{secret}-2"),
        };
        let entries: Vec<String> = source_entries(&ingest)
            .iter()
            .map(|e| substitute(e, value))
            .collect();
        let sources = shared::config::parse_sources(&format!("[{}]", entries.join(",")))
            .unwrap_or_else(|e| panic!("{e}"));
        let providers: Vec<Provider> = sources.iter().map(|s| s.provider).collect();
        assert_eq!(providers, Provider::ALL);
        for s in &sources {
            assert_eq!(s.secrets.len(), 2, "{:?}", s.id);
        }
        let twilio = &sources[2];
        assert_eq!(twilio.inbound.public_url.as_deref(), public_url);
    }
    // Media fetches the files of every provider but 360dialog; admin sends through Meta and
    // WAHA only.
    for (function, expected) in [
        (
            "MediaFunction",
            &["meta", "waha", "twilio", "gupshup", "evolution"][..],
        ),
        ("AdminFunction", &["meta", "waha"][..]),
    ] {
        let entries = source_entries(&resource(&template, function));
        let providers: Vec<&str> = entries
            .iter()
            .filter_map(|e| e.split("\"provider\":\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(providers, expected, "{function}");
    }
}

/// Two enabled sources with one id would name one webhook URL, and ingest would refuse to
/// start: `SourceIdsDiffer` refuses such a deploy, for every pair of source id parameters.
#[test]
fn every_pair_of_source_ids_is_checked_at_deploy() {
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let parameters = template
        .split("\nParameters:\n")
        .nth(1)
        .and_then(|rest| rest.split("\nRules:\n").next())
        .unwrap();
    let ids: Vec<&str> = parameters
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.strip_suffix("SourceId:"))
        .collect();
    assert_eq!(ids.len(), shared::model::Provider::ALL.len(), "{ids:?}");
    let rule = resource(&template, "SourceIdsDiffer");
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            assert!(
                rule.contains(&format!(
                    "!Not [!Equals [!Ref {a}SourceId, !Ref {b}SourceId]]"
                )),
                "{a}SourceId and {b}SourceId"
            );
        }
    }
}

/// What a table looks like, for comparison: keys, attribute types, indexes, TTL attribute.
async fn table_shape(clients: &aws_adapters::Clients, name: &str) -> String {
    let table = clients
        .dynamodb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let mut attributes: Vec<String> = table
        .attribute_definitions()
        .iter()
        .map(|a| format!("{}:{}", a.attribute_name(), a.attribute_type().as_str()))
        .collect();
    attributes.sort();
    let keys = |k: &[aws_adapters::aws_sdk_dynamodb::types::KeySchemaElement]| {
        k.iter()
            .map(|k| format!("{}:{}", k.attribute_name(), k.key_type().as_str()))
            .collect::<Vec<_>>()
            .join(",")
    };
    let indexes: Vec<String> = table
        .global_secondary_indexes()
        .iter()
        .map(|i| {
            let projection = i
                .projection()
                .and_then(|p| p.projection_type())
                .map(|p| p.as_str().to_owned());
            format!(
                "{}({}) {projection:?}",
                i.index_name().unwrap_or_default(),
                keys(i.key_schema())
            )
        })
        .collect();
    let billing = table
        .billing_mode_summary()
        .and_then(|b| b.billing_mode())
        .map(|b| b.as_str().to_owned());
    let ttl = clients
        .dynamodb
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .and_then(|t| t.attribute_name)
        .unwrap_or_default();
    format!(
        "keys {} | attributes {attributes:?} | indexes {indexes:?} | billing {billing:?} | ttl {ttl}",
        keys(table.key_schema())
    )
}

/// A queue's visibility timeout, and its redrive policy as (target queue name, max receives).
async fn queue_shape(clients: &aws_adapters::Clients, name: &str) -> (u64, Option<(String, u64)>) {
    use aws_adapters::aws_sdk_sqs::types::QueueAttributeName;
    let url = clients
        .sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e:?}"))
        .queue_url
        .unwrap();
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let visibility = attributes[&QueueAttributeName::VisibilityTimeout]
        .parse()
        .unwrap();
    let redrive = attributes.get(&QueueAttributeName::RedrivePolicy).map(|p| {
        let policy: serde_json::Value = serde_json::from_str(p).unwrap();
        let target = policy["deadLetterTargetArn"].as_str().unwrap();
        let max = match &policy["maxReceiveCount"] {
            serde_json::Value::String(s) => s.parse().unwrap(),
            n => n.as_u64().unwrap(),
        };
        (target.rsplit(':').next().unwrap().to_owned(), max)
    });
    (visibility, redrive)
}

/// The resources `template.yaml` declares, created on moto as declared, are what the code
/// expects: the table's keys, index and TTL attribute, and every queue's visibility timeout and
/// dead-letter queue after `maxReceiveCount` receives are those the local mode uses
/// (`wagate_local::backend::QUEUES`) and `--create` makes. (The end-to-end suite runs on such
/// resources too: `e2e::*_on_the_template_resources_in_moto`.)
#[tokio::test]
async fn the_template_resources_on_moto_are_what_the_code_expects() {
    use wagate_local::backend::{AwsBackend, QUEUES, Stores};
    let declared = tests::moto::from_template("tpl");
    let created = tests::moto::unique("code");
    Stores::aws(&AwsBackend {
        endpoint_url: Some(tests::moto::url()),
        region: "us-east-1".into(),
        table: created.clone(),
        queue_prefix: created.clone(),
        create: true,
    })
    .await
    .unwrap();
    let clients = tests::moto::clients().await;
    let shape = table_shape(&clients, &declared).await;
    assert_eq!(
        shape,
        format!(
            "keys pk:HASH,sk:RANGE | attributes [\"gsi1pk:S\", \"gsi1sk:S\", \"pk:S\", \"sk:S\"] \
             | indexes [\"{}(gsi1pk:HASH,gsi1sk:RANGE) Some(\\\"KEYS_ONLY\\\")\"] \
             | billing Some(\"PAY_PER_REQUEST\") | ttl ttl",
            aws_adapters::INDEX_NAME
        )
    );
    assert_eq!(shape, table_shape(&clients, &created).await);
    for spec in QUEUES {
        let name = format!("{declared}-{}", spec.name);
        let (visibility, redrive) = queue_shape(&clients, &name).await;
        assert_eq!(visibility, spec.visibility.as_secs(), "{name}");
        assert_eq!(
            redrive,
            Some((format!("{name}-dlq"), u64::from(spec.max_receives))),
            "{name}"
        );
        let (dlq_visibility, dlq_redrive) = queue_shape(&clients, &format!("{name}-dlq")).await;
        assert_eq!(dlq_redrive, None, "{name}-dlq");
        let ours = format!("{created}-{}", spec.name);
        let (v, r) = queue_shape(&clients, &ours).await;
        assert_eq!(v, visibility, "{ours}");
        assert_eq!(r.map(|(_, max)| max), Some(u64::from(spec.max_receives)));
        let (our_dlq_visibility, _) = queue_shape(&clients, &format!("{ours}-dlq")).await;
        assert_eq!(our_dlq_visibility, dlq_visibility, "{ours}-dlq");
    }
}

/// Every `events/` fixture parses as the event type its function's runtime deserializes
/// (API Gateway v2 requests through `lambda_http`, SQS batches, the EventBridge schedule), every
/// function of the template has at least one, and `events/env.json` configures exactly the
/// template's functions.
#[test]
fn every_fixture_is_the_lambda_event_its_function_receives() {
    use aws_lambda_events::eventbridge::EventBridgeEvent;
    use aws_lambda_events::sqs::SqsEvent;
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let functions: Vec<&str> = template
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.strip_suffix("Function:"))
        .filter(|name| !name.contains(' ') && !name.is_empty())
        .collect();
    assert_eq!(
        functions,
        [
            "Ingest", "Track", "Sweep", "Fanout", "Buffer", "Deliver", "Media", "Admin"
        ]
    );
    let events = repo_root().join("events");
    let mut covered = std::collections::BTreeMap::<&str, usize>::new();
    for entry in std::fs::read_dir(&events).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".json") || name == "env.json" {
            continue;
        }
        let text = std::fs::read_to_string(events.join(&name)).unwrap();
        let prefix = name.split('-').next().unwrap();
        let function = match prefix {
            "ingest" | "admin" => {
                let request =
                    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                // A named stage prefixes the path (`/prod/webhooks/…`), as API Gateway hands it over.
                let path = request.uri().path();
                let path = if name.contains("stage-path") {
                    path.strip_prefix("/prod").unwrap_or(path)
                } else {
                    path
                };
                // The admin function's routes: the API and the console (`template.yaml`).
                let routed = if prefix == "admin" {
                    path.starts_with("/v1/") || path.starts_with("/console/")
                } else {
                    path.starts_with("/webhooks/")
                };
                // A Function URL sends any path; this one shows the function refusing it.
                assert!(routed || name.contains("other-path"), "{name}");
                if prefix == "admin" { "Admin" } else { "Ingest" }
            }
            "track" | "fanout" | "buffer" | "deliver" | "media" => {
                let event: SqsEvent =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(!event.records.is_empty(), "{name}");
                for r in &event.records {
                    assert!(
                        r.message_id.is_some() && r.receipt_handle.is_some() && r.body.is_some()
                    );
                    assert_eq!(r.event_source.as_deref(), Some("aws:sqs"), "{name}");
                    assert!(
                        r.attributes.contains_key("ApproximateReceiveCount"),
                        "{name}"
                    );
                }
                match prefix {
                    "track" => "Track",
                    "fanout" => "Fanout",
                    "buffer" => "Buffer",
                    "media" => "Media",
                    _ => "Deliver",
                }
            }
            "sweep" => {
                let event: EventBridgeEvent =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(event.source, "aws.events");
                "Sweep"
            }
            _ => panic!("{name}: which function is this fixture for?"),
        };
        *covered.entry(function).or_default() += 1;
    }
    for f in &functions {
        assert!(covered.get(f).is_some_and(|n| *n > 0), "no fixture for {f}");
    }
    let env: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(events.join("env.json")).unwrap()).unwrap();
    let mut configured: Vec<String> = env.keys().cloned().collect();
    configured.sort();
    let mut want: Vec<String> = functions.iter().map(|f| format!("{f}Function")).collect();
    want.sort();
    assert_eq!(configured, want);
}

#[test]
fn claim_checked_bodies_outlive_every_queue_message_that_points_at_them() {
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let retention = |name: &str| -> u64 {
        let block = resource(&template, name);
        let line = block
            .lines()
            .find(|l| l.trim_start().starts_with("MessageRetentionPeriod:"))
            .unwrap_or_else(|| panic!("{name} sets no MessageRetentionPeriod"));
        line.split(':').nth(1).unwrap().trim().parse().unwrap()
    };
    let work = [
        "InboundQueue",
        "BufferQueue",
        "OutboundQueue",
        "DeliveryQueue",
    ]
    .map(retention)
    .into_iter()
    .max()
    .unwrap();
    let dead_letter = ["InboundDLQ", "BufferDLQ", "OutboundDLQ", "DeliveryDLQ"]
        .map(retention)
        .into_iter()
        .max()
        .unwrap();
    // A dead-letter queue counts from the original enqueue time; a redrive on its last day
    // starts a new message that may wait a work queue's full retention.
    let longest = dead_letter.max(work) + work + 86_400;
    let kept = shared::ports::codec::QUEUED_BLOB_LIFETIME.as_secs();
    assert!(
        kept >= longest,
        "claim-checks kept {kept} s, a message may point at one for {longest} s"
    );
}

/// Least privilege in the table (the calls each function makes are checked against these
/// policies in `lambda_binaries`): only the admin API and deliver (disabling an endpoint that
/// answers 410) may write endpoint documents; ingest, the internet-facing function, may only
/// add raw requests and claim-checked events; no function may scan, and every table statement
/// but `DescribeTable` is limited by partition key, with a call naming none refused.
#[test]
fn each_function_reaches_only_the_partition_keys_it_uses() {
    use tests::policy::{Request, statements};
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let request = |action: &str, key: &str| Request {
        action: format!("dynamodb:{action}"),
        resource: "Table".into(),
        leading_keys: vec![key.to_owned()],
    };
    let functions = [
        "IngestFunction",
        "TrackFunction",
        "SweepFunction",
        "FanoutFunction",
        "BufferFunction",
        "DeliverFunction",
        "AdminFunction",
        "MediaFunction",
    ];
    for name in functions {
        let policy = statements(&template, name);
        let allowed = |r: &Request| policy.iter().any(|s| s.allows(r));
        let writes_endpoints = allowed(&request("PutItem", "doc#endpoint#ep_1"));
        assert_eq!(
            writes_endpoints,
            matches!(name, "AdminFunction" | "DeliverFunction"),
            "{name} writing endpoint documents"
        );
        for s in &policy {
            let table = s.resources.iter().any(|r| r == "Table");
            let only_describe = s.actions == ["dynamodb:DescribeTable"];
            if table && !only_describe {
                assert!(
                    s.leading_keys.is_some() && s.keys_required,
                    "{name} {}: a table statement without a partition key condition",
                    s.sid
                );
            }
            assert!(
                !s.actions
                    .iter()
                    .any(|a| a.contains("Scan") || a.contains('*')),
                "{name} {}: {:?}",
                s.sid,
                s.actions
            );
        }
        assert!(!allowed(&Request {
            action: "dynamodb:GetItem".into(),
            resource: "Table".into(),
            leading_keys: Vec::new(),
        }));
    }
    let ingest = statements(&template, "IngestFunction");
    let ingest_allows = |r: &Request| ingest.iter().any(|s| s.allows(r));
    assert!(ingest_allows(&request("PutItem", "blob#req#01J")));
    assert!(ingest_allows(&request("PutItem", "blob#evt#evt_01J")));
    for (action, key) in [
        ("GetItem", "blob#req#01J"),
        ("PutItem", "doc#conv#conv_1"),
        ("PutItem", "doc#outbox#meta-main:x"),
        ("PutItem", "blob#task#t"),
    ] {
        assert!(
            !ingest_allows(&request(action, key)),
            "ingest {action} {key}"
        );
    }
}

/// Flood protection: the webhook routes have their own API Gateway throttle, apart from the
/// management API's, and ingest has reserved concurrency by default, so unsigned POSTs cannot
/// take the account's concurrency from track and deliver.
#[test]
fn webhook_routes_and_ingest_are_throttled_by_default() {
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let api = resource(&template, "HttpApi");
    for route in [
        "\"POST /webhooks/{source_id}\":",
        "\"GET /webhooks/{source_id}\":",
    ] {
        let settings: Vec<&str> = api
            .lines()
            .skip_while(|l| l.trim() != route)
            .skip(1)
            .take(2)
            .map(str::trim)
            .collect();
        assert_eq!(
            settings,
            [
                "ThrottlingRateLimit: !Ref WebhookRateLimit",
                "ThrottlingBurstLimit: !Ref WebhookBurstLimit"
            ],
            "{route}"
        );
    }
    let default = |parameter: &str| -> u64 {
        resource(&template, parameter)
            .lines()
            .find_map(|l| l.trim().strip_prefix("Default: "))
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("{parameter} has no numeric default"))
    };
    assert!(default("IngestReservedConcurrency") > 0);
    assert!(default("WebhookRateLimit") > default("AdminRateLimit"));
    assert!(default("WebhookBurstLimit") >= default("WebhookRateLimit"));
    let ingest = resource(&template, "IngestFunction");
    assert!(ingest.contains(
        "ReservedConcurrentExecutions: !If [ReservesIngest, !Ref IngestReservedConcurrency, !Ref AWS::NoValue]"
    ));
}

/// The operator console is served by the admin function, on `GET` only, under the management
/// API's throttle (its page is public; what it shows needs an API key).
#[test]
fn console_routes_reach_the_admin_function_under_the_admin_throttle() {
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let api = resource(&template, "HttpApi");
    for route in ["\"GET /console\":", "\"GET /console/{proxy+}\":"] {
        let settings: Vec<&str> = api
            .lines()
            .skip_while(|l| l.trim() != route)
            .skip(1)
            .take(2)
            .map(str::trim)
            .collect();
        assert_eq!(
            settings,
            [
                "ThrottlingRateLimit: !Ref AdminRateLimit",
                "ThrottlingBurstLimit: !Ref AdminBurstLimit"
            ],
            "{route}"
        );
    }
    let admin = resource(&template, "AdminFunction");
    for path in ["/console", "/console/{proxy+}"] {
        let method: Vec<&str> = admin
            .lines()
            .skip_while(|l| l.trim() != format!("Path: {path}"))
            .skip(1)
            .take(1)
            .map(str::trim)
            .collect();
        assert_eq!(method, ["Method: GET"], "{path}");
    }
}

/// Secrets out of the functions' configuration by default: `sam deploy` (samconfig.toml) names
/// SSM SecureString parameters, and a customer managed key, when named, may decrypt them for
/// ingest and admin through SSM only.
#[test]
fn the_deploy_path_reads_secrets_from_ssm() {
    let samconfig = std::fs::read_to_string(repo_root().join("samconfig.toml")).unwrap();
    let overrides = samconfig
        .lines()
        .find_map(|l| l.strip_prefix("parameter_overrides = "))
        .expect("samconfig.toml gives parameter_overrides");
    assert!(
        overrides.contains("SourcesParameter=/wagate/sources"),
        "{overrides}"
    );
    assert!(
        overrides.contains("AdminApiKeysParameter=/wagate/admin-api-keys"),
        "{overrides}"
    );
    let script = std::fs::read_to_string(repo_root().join("scripts/put-secrets.sh")).unwrap();
    for name in ["/sources", "/admin-api-keys", "--type SecureString"] {
        assert!(script.contains(name), "put-secrets.sh: {name}");
    }
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    for (function, grant) in [
        ("IngestFunction", "SourcesKeyGrant"),
        ("AdminFunction", "AdminSecretsKeyGrant"),
    ] {
        let policy = tests::policy::statements(&template, function);
        let decrypt = policy
            .iter()
            .find(|s| s.sid == "DecryptSecretsParameter")
            .unwrap_or_else(|| panic!("{function} cannot decrypt with SecretsKmsKeyArn"));
        assert_eq!(decrypt.actions, ["kms:Decrypt"]);
        assert_eq!(decrypt.resources, ["ref:SecretsKmsKeyArn"]);
        let text = resource(&template, function);
        let at = text.find("- Sid: DecryptSecretsParameter").unwrap();
        assert!(
            text[..at].trim_end().ends_with(&format!("- {grant}")),
            "{function}"
        );
        assert!(text[at..].contains("kms:ViaService: !Sub ssm.${AWS::Region}.amazonaws.com"));
    }
}

/// Limits a real account has and moto does not: the largest body ingest may be told to take
/// fits a Lambda event (6 MB, the body escaped or base64-encoded); the sweep runs once per tick
/// (no scheduler retries, no asynchronous-invocation retries), from a schedule with no fixed
/// name; two stacks share no name (`scripts/check-template.py` renders and checks them all).
#[test]
fn limits_of_a_real_account_are_in_the_template() {
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let max_body: u64 = resource(&template, "MaxBodyBytes")
        .lines()
        .find_map(|l| l.trim().strip_prefix("MaxValue: "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        max_body * 4 / 3 + 64 * 1024 <= 6 * 1024 * 1024,
        "{max_body}"
    );

    let sweep = resource(&template, "SweepFunction");
    assert!(
        sweep.contains("EventInvokeConfig:\n        MaximumRetryAttempts: 0"),
        "{sweep}"
    );
    assert!(
        !sweep.contains("ScheduleV2"),
        "a SAM schedule is named after its logical id"
    );
    let timer = resource(&template, "SweepTimer");
    assert!(timer.contains("Type: AWS::Scheduler::Schedule"));
    assert!(timer.contains("MaximumRetryAttempts: 0"));
    assert!(
        !timer.contains("\n      Name:"),
        "a fixed schedule name clashes across stacks"
    );
    for function in [
        "Ingest", "Track", "Sweep", "Fanout", "Buffer", "Deliver", "Admin",
    ] {
        let f = resource(&template, &format!("{function}Function"));
        assert!(
            !f.contains("FunctionName:"),
            "{function}: a fixed name clashes across stacks"
        );
        let logs = resource(&template, &format!("{function}LogGroup"));
        assert!(!logs.contains("LogGroupName:"), "{function}");
        assert!(
            !f.contains("Type: SQS"),
            "{function}: SAM's SQS event attaches an account-wide policy"
        );
    }
}
