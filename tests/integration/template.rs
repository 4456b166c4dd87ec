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
    let cases: [(&str, &[&str]); 7] = [
        ("IngestFunction", ingest::Config::VARIABLES),
        ("TrackFunction", track::Config::VARIABLES),
        ("SweepFunction", sweep::Config::VARIABLES),
        ("FanoutFunction", fanout::Config::VARIABLES),
        ("DeliverFunction", deliver::Config::VARIABLES),
        ("BufferFunction", buffer::Config::VARIABLES),
        ("AdminFunction", admin::Config::VARIABLES),
    ];
    for (name, expected) in cases {
        let mut got = variables(&resource(&template, name));
        let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{name}");
    }
}
