//! The CPU-vs-GPU agreement check (`flowvae bench agree`): on the CPU against itself here (the
//! parameters reach the second model only through the safetensors copy, which this checks),
//! and against `cuda:0` in a CUDA build on a machine with a GPU (skipped with a printed reason
//! otherwise).

use std::path::Path;

use flowvae_runner::{bench_data, device_agreement, Device, AGREEMENT_STACKS};

#[test]
fn the_cpu_agrees_with_itself_through_the_copied_parameters() {
    let (data, _) = bench_data(Path::new("no-such-folder"), 0).unwrap();
    let rows = device_agreement(&data, &Device::Cpu, 0).unwrap();
    assert_eq!(rows.len(), AGREEMENT_STACKS.len());
    for row in rows {
        assert!(row.worst() < 1e-6, "{row:?}");
        assert_eq!(row.devices, ("cpu".to_string(), "cpu".to_string()));
    }
}

#[test]
fn a_gpu_agrees_with_the_cpu_within_1e_4() {
    if !cfg!(feature = "cuda") {
        println!("skipped: this build has no `cuda` feature");
        return;
    }
    let gpu = match Device::new_cuda(0) {
        Ok(gpu) => gpu,
        Err(e) => {
            println!("skipped: no CUDA device ({e})");
            return;
        }
    };
    let (data, _) = bench_data(Path::new("no-such-folder"), 0).unwrap();
    for row in device_agreement(&data, &gpu, 0).unwrap() {
        println!("{row:?}");
        assert!(row.worst() <= 1e-4, "{row:?}");
    }
}
