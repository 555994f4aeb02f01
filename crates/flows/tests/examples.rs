//! The examples run as tests, so that they never rot: each is compiled here as a module and
//! its functions called with small sizes.

#[path = "../examples/fit_2d_density.rs"]
#[allow(dead_code)]
mod fit_2d_density;

#[path = "../examples/custom_flow.rs"]
#[allow(dead_code)]
mod custom_flow;

#[test]
fn the_2d_example_learns_beyond_its_starting_point() {
    // Before training the stack is ActNorm's Gaussian fit; couplings must bend it.
    let start = fit_2d_density::fit(0).unwrap();
    let fitted = fit_2d_density::fit(300).unwrap();
    assert!(
        fitted > start + 0.2,
        "test log-likelihood {fitted}, at the start {start}"
    );
}

#[test]
fn the_custom_flow_example_passes_the_check() {
    assert!(custom_flow::check(5, 0.7).unwrap() < 1e-9);
}
