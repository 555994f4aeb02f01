//! Every checkpoint a command reads back (best, last, a 2-D run's final) is verified: a bit
//! flipped in its header, metadata or data is refused with the file named, and nothing the
//! user has (the summary, the metrics, an output path) is touched.

use std::path::Path;

mod common;

use common::{fails_with, finished_run, output as flowvae, write};

/// Flips one bit of `file` at the first byte after `marker` (or the last byte), runs `args`,
/// expects a refusal naming the file, and puts the byte back.
fn refused_after_flip(file: &Path, marker: Option<&[u8]>, args: &[&str], keep: &Path) {
    let bytes = std::fs::read(file).unwrap();
    let at = match marker {
        Some(m) => {
            let start = bytes.windows(m.len()).position(|w| w == m);
            start.unwrap_or_else(|| {
                panic!("{} has no {:?}", file.display(), String::from_utf8_lossy(m))
            }) + m.len()
        }
        None => bytes.len() - 1,
    };
    let kept = std::fs::read(keep).unwrap();
    let mut damaged = bytes.clone();
    damaged[at] ^= 0x04;
    std::fs::write(file, &damaged).unwrap();
    let name = file.file_name().unwrap().to_str().unwrap();
    let line = fails_with(&flowvae(args, &[]), &[name]);
    assert!(
        line.contains("checksum") || line.contains("safetensors file"),
        "{line}"
    );
    assert_eq!(
        std::fs::read(keep).unwrap(),
        kept,
        "{} changed",
        keep.display()
    );
    std::fs::write(file, &bytes).unwrap();
}

#[test]
fn every_checkpoint_kind_refuses_a_flipped_bit_in_header_metadata_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let run = finished_run(dir.path());
    let r = run.to_str().unwrap();
    let best = run.join("checkpoints/best.safetensors");
    let summary = run.join("summary.json");
    let csv = dir.path().join("z.csv");
    let out_png = dir.path().join("s.png");
    let readers: [&[&str]; 3] = [
        &["eval", r, "--samples", "2"],
        &["sample", r, "-n", "4", "--out", out_png.to_str().unwrap()],
        &["transform", r, "--output", csv.to_str().unwrap()],
    ];
    for marker in [
        Some(&b"encoder.fc"[..]),
        Some(&b"flowvae-params-"[..]),
        None,
    ] {
        for args in readers {
            refused_after_flip(&best, marker, args, &summary);
        }
    }
    assert!(!csv.exists() && !out_png.exists());

    std::fs::remove_file(&summary).unwrap();
    let last = run.join("checkpoints/last.safetensors");
    let metrics = run.join("metrics.csv");
    for marker in [
        Some(&b"optimizer.fi"[..]),
        Some(&b"\"epochs_done\":\""[..]),
        None,
    ] {
        refused_after_flip(&last, marker, &["run", "--resume", r], &metrics);
    }

    let two_d = write(
        dir.path(),
        "moons.yaml",
        b"name: moons\ntarget:\n  samples: two_moons\nflow:\n  - affine_coupling: {k: 2, hidden: [8]}\ntrain:\n  steps: 20\n  batch_size: 64\n  log_every: 10\n  test_samples: 100\nplot:\n  grid: 20\n  samples: 100\n",
    );
    let results = dir.path().join("results");
    let out = flowvae(
        &[
            "run",
            two_d.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--run-id",
            "m",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let moons = results.join("moons/m");
    let final_file = moons.join("checkpoints/final.safetensors");
    let args = [
        "transform",
        moons.to_str().unwrap(),
        "--output",
        csv.to_str().unwrap(),
    ];
    for marker in [Some(&b"flow.0"[..]), Some(&b"flowvae-params-"[..]), None] {
        refused_after_flip(&final_file, marker, &args, &moons.join("summary.json"));
    }
}
