//! The example runs as a test, so that it never rots.

#[path = "../examples/vae_flow_posterior.rs"]
#[allow(dead_code)]
mod vae_flow_posterior;

#[test]
fn the_flow_vae_example_trains_past_its_starting_point() {
    let untrained = vae_flow_posterior::train(0).unwrap();
    let trained = vae_flow_posterior::train(3).unwrap();
    // 64 binary pixels: an untrained decoder is near 64·ln 2 ≈ 44 nats per image.
    assert!(untrained < -35.0, "untrained log p(x) {untrained}");
    assert!(
        trained > untrained + 5.0,
        "trained {trained}, untrained {untrained}"
    );
}
