//! Bad settings of the new kinds, named before anything is built.

use candle_core::{DType, Device};

use super::*;

fn build(yaml: &str, dim: usize) -> Result<Composed> {
    let specs: Vec<FlowSpec> = serde_yaml::with::singleton_map_recursive::deserialize(
        serde_yaml::Deserializer::from_str(yaml),
    )
    .unwrap();
    let store = ParamStore::new(0);
    let vb = store.var_builder(DType::F64, &Device::Cpu).pp("flow");
    let options = StackOptions {
        amortized_default: false,
        seed: 0,
    };
    build_stack(&specs, dim, &store, vb, options)
}

/// Bad settings of the new kinds name their YAML field before anything is built.
#[test]
fn bad_settings_of_additive_coupling_name_the_field() {
    for (yaml, dim, field) in [
        (
            "- additive_coupling: {k: 2}",
            1,
            "flow[0].additive_coupling.k",
        ),
        (
            "- lu_linear: {}\n- additive_coupling: {hidden: []}",
            3,
            "flow[1].additive_coupling.hidden",
        ),
        (
            "- additive_coupling: {k: 0}",
            3,
            "flow[0].additive_coupling.k",
        ),
        (
            "- additive_coupling: {context: 100000}",
            3,
            "flow[0].additive_coupling.context",
        ),
    ] {
        let err = build(yaml, dim).unwrap_err().to_string();
        assert!(err.starts_with(field), "{yaml}: {err}");
    }
    assert_eq!(
        build("- additive_coupling: {k: 3, scale: true}", 4)
            .unwrap()
            .layers()
            .len(),
        4
    );
}
