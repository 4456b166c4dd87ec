//! Secrets from SSM Parameter Store (SecureString) over the wire on moto: `NAME_PARAMETER`
//! names the parameter, the function reads it at cold start in place of `NAME`.

use std::collections::HashMap;

use aws_adapters::aws_sdk_ssm::types::ParameterType;
use aws_adapters::secrets::{from_parameters, overlay};
use tests::moto;

async fn sdk() -> aws_adapters::SdkConfig {
    aws_adapters::local_sdk_config(&moto::url(), "us-east-1").await
}

async fn put_secure(sdk: &aws_adapters::SdkConfig, name: &str, value: &str) {
    aws_adapters::aws_sdk_ssm::Client::new(sdk)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn secrets_named_by_a_parameter_variable_are_read_from_ssm() {
    let sdk = sdk().await;
    let sources_name = format!("/{}/sources", moto::unique("wagate"));
    let sources = r#"[{"id":"meta-main","provider":"meta","secrets":"app-secret-from-ssm","verify_token":"vt"}]"#;
    put_secure(&sdk, &sources_name, sources).await;
    let env: HashMap<&str, String> = HashMap::from([
        ("WAGATE_SOURCES_PARAMETER", sources_name.clone()),
        ("WAGATE_SOURCES", "[]".to_owned()),
        ("TABLE_NAME", "t".to_owned()),
        ("INBOUND_QUEUE_URL", "q".to_owned()),
    ]);
    let lookup = |k: &str| env.get(k).cloned();
    let fetched = from_parameters(&sdk, ingest::Config::SECRETS, lookup)
        .await
        .unwrap();
    assert_eq!(fetched["WAGATE_SOURCES"], sources);
    // The parameter wins over the variable; the rest still comes from the environment.
    let config = ingest::Config::from_lookup(overlay(fetched, lookup)).unwrap();
    assert_eq!(config.sources.len(), 1);
    assert_eq!(config.sources[0].id.as_str(), "meta-main");
    assert_eq!(config.table_name, "t");

    // Without a parameter variable nothing is fetched.
    let plain = |k: &str| (k == "ADMIN_API_KEYS").then(|| "key-0123456789abcdef".to_owned());
    let fetched = from_parameters(&sdk, admin::Config::SECRETS, plain)
        .await
        .unwrap();
    assert!(fetched.is_empty());
}

#[tokio::test]
async fn a_missing_parameter_is_an_error_naming_it_and_not_a_fallback() {
    let sdk = sdk().await;
    let name = format!("/{}/admin-keys", moto::unique("wagate"));
    let lookup = |k: &str| (k == "ADMIN_API_KEYS_PARAMETER").then(|| name.clone());
    let err = from_parameters(&sdk, admin::Config::SECRETS, lookup)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&name) && text.contains("ADMIN_API_KEYS_PARAMETER"),
        "{text}"
    );
    // Present: the admin keys come from the parameter.
    put_secure(
        &sdk,
        &name,
        "admin-key-from-ssm-0001, admin-key-from-ssm-0002",
    )
    .await;
    let fetched = from_parameters(&sdk, admin::Config::SECRETS, lookup)
        .await
        .unwrap();
    let base = |k: &str| match k {
        "TABLE_NAME" | "DELIVERY_QUEUE_URL" | "DELIVERY_DLQ_URL" | "OUTBOUND_QUEUE_URL" => {
            Some("x".to_owned())
        }
        _ => None,
    };
    let config = admin::Config::from_lookup(overlay(fetched, base)).unwrap();
    assert_eq!(config.admin.api_keys.len(), 2);
}
