//! Compact labels of flow stacks for tables and plot titles.

/// `planar(k=8) + affine_coupling(k=4)`, or `none (VAE)` for an empty posterior stack.
pub fn posterior_label(flow: &[flowvae_flows::FlowSpec]) -> String {
    if flow.is_empty() {
        "none (VAE)".into()
    } else {
        stack_label(flow)
    }
}

/// `planar(k=32) + reverse`: a compact label of a flow stack.
pub fn stack_label(flow: &[flowvae_flows::FlowSpec]) -> String {
    flow.iter().map(spec_label).collect::<Vec<_>>().join(" + ")
}

fn spec_label(spec: &flowvae_flows::FlowSpec) -> String {
    let settings = |value: serde_json::Value| {
        value
            .get(spec.kind())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    };
    let given = settings(serde_json::to_value(spec).unwrap_or_default());
    // Settings equal to their defaults are left out of the label.
    let defaults =
        serde_json::from_value::<flowvae_flows::FlowSpec>(serde_json::json!({ spec.kind(): {} }))
            .ok()
            .map(|d| settings(serde_json::to_value(d).unwrap_or_default()))
            .unwrap_or_default();
    let args: Vec<String> = given
        .iter()
        .filter(|(k, v)| defaults.get(*k) != Some(v) || *k == "k")
        .map(|(k, v)| format!("{k}={}", v.to_string().replace('"', "")))
        .collect();
    if args.is_empty() {
        spec.kind().to_string()
    } else {
        format!("{}({})", spec.kind(), args.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_show_counts_and_non_default_settings_only() {
        let yaml = "- planar: {k: 8}\n- affine_coupling: {k: 4, hidden: [64]}\n- reverse: {}\n";
        let specs: Vec<flowvae_flows::FlowSpec> =
            crate::experiment::yaml::parse(std::path::Path::new("t.yaml"), yaml).unwrap();
        assert_eq!(
            stack_label(&specs),
            "planar(k=8) + affine_coupling(hidden=[64], k=4) + reverse"
        );
    }
}
