//! Secrets kept in SSM Parameter Store (SecureString) instead of in environment variables: for a
//! secret variable `NAME`, a function may be given `NAME_PARAMETER`, the parameter's name, and
//! then reads the decrypted value once at cold start. Lambda environment variables are readable
//! by anyone allowed `lambda:GetFunctionConfiguration`; parameters need `ssm:GetParameter` on the
//! one parameter.

use std::collections::HashMap;

use aws_sdk_ssm::error::DisplayErrorContext;

/// The suffix naming a variable's parameter: `ADMIN_API_KEYS` → `ADMIN_API_KEYS_PARAMETER`.
pub const SUFFIX: &str = "_PARAMETER";

/// A secret that could not be read. Names the variable and the parameter, never a value.
#[derive(Debug, thiserror::Error)]
#[error("could not read SSM parameter {parameter} (from {variable}{SUFFIX}): {reason}")]
pub struct SecretError {
    /// The variable the parameter stands for.
    pub variable: &'static str,
    /// The parameter's name.
    pub parameter: String,
    /// What went wrong (the SDK's message, or an empty value).
    pub reason: String,
}

/// For each of `variables` whose `{variable}_PARAMETER` is set (through `lookup`), fetches that
/// parameter, decrypted; returns variable → value. Variables without a parameter are left to
/// the environment, and no SSM client is made when none has one.
pub async fn from_parameters(
    sdk: &aws_config::SdkConfig,
    variables: &[&'static str],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<HashMap<&'static str, String>, SecretError> {
    let mut values = HashMap::new();
    let mut client = None;
    for &variable in variables {
        let Some(parameter) = lookup(&format!("{variable}{SUFFIX}")).filter(|p| !p.is_empty())
        else {
            continue;
        };
        let error = |reason: String| SecretError {
            variable,
            parameter: parameter.clone(),
            reason,
        };
        let out = client
            .get_or_insert_with(|| aws_sdk_ssm::Client::new(sdk))
            .get_parameter()
            .name(&parameter)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| error(DisplayErrorContext(e).to_string()))?;
        let value = out
            .parameter
            .and_then(|p| p.value)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| error("the parameter has no value".to_owned()))?;
        values.insert(variable, value);
    }
    Ok(values)
}

/// The process environment with `secrets` read from their parameters where `{NAME}_PARAMETER`
/// is set: what a function's `Config::from_lookup` reads at cold start.
pub async fn environment(
    sdk: &aws_config::SdkConfig,
    secrets: &[&'static str],
) -> Result<impl Fn(&str) -> Option<String>, SecretError> {
    let env = |k: &str| std::env::var(k).ok();
    Ok(overlay(from_parameters(sdk, secrets, env).await?, env))
}

/// A lookup that answers the fetched secrets first, then `fallback` (the environment).
pub fn overlay(
    fetched: HashMap<&'static str, String>,
    fallback: impl Fn(&str) -> Option<String>,
) -> impl Fn(&str) -> Option<String> {
    move |name| fetched.get(name).cloned().or_else(|| fallback(name))
}
