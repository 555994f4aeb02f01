//! The report's figures: the differences to the baseline and the aggregated learning curves
//! as inline SVG, and each model's image grids (samples, reconstructions, 2-D densities) as
//! embedded PNGs, shrunk and within a size budget so that a study's page stays small.

use std::path::{Component, Path, PathBuf};

use flowvae_plot::{png_thumbnail, Band, BandChart, DeltaChart, MAX_OVERLAID};

use super::markup::{base64, escape};
use super::table::Layout;
use crate::error::Result;
use crate::report::groups::{delta_points, ModelGroup};

/// Plots of a run folder shown per model, with their captions, when present.
const GRIDS: [(&str, &str); 4] = [
    ("samples.png", "samples from the prior"),
    ("reconstructions.png", "test images and reconstructions"),
    ("density.png", "target and learned density"),
    ("samples_scatter.png", "samples"),
];
/// Embedded images are at most this wide (the page shows them 180 px wide and links the
/// full-size file).
const THUMBNAIL_WIDTH: u32 = 200;

/// The Δ plot, or nothing without a baseline or a second model.
pub(crate) fn delta_figure(
    groups: &[ModelGroup],
    layout: &Layout,
    has_baseline: bool,
) -> Result<String> {
    let points = delta_points(groups);
    if !has_baseline || points.is_empty() {
        return Ok(String::new());
    }
    let better = if layout.higher_is_better {
        "higher"
    } else {
        "lower"
    };
    let title = format!("Δ {} vs {}", layout.score, groups[0].label);
    let x_label = format!("nats, {better} is better; bars: ± 2 standard errors");
    let svg = DeltaChart {
        title: &title,
        x_label: &x_label,
        points: &points,
    }
    .svg()?;
    Ok(format!(
        "<h2 id=\"delta\">Differences to {}</h2>\n<figure>{svg}<figcaption>Sorted, lowest first. \
         Paired by seed where every seed has a baseline run (the standard error is then that of \
         the paired differences). A bar clear of the zero line, drawn in colour, is a difference \
         beyond two standard errors.</figcaption></figure>\n",
        escape(&groups[0].label)
    ))
}

/// The learning curves aggregated per model; nothing when no run has a validation curve.
pub(crate) fn curves_figure(groups: &[ModelGroup], layout: &Layout) -> Result<String> {
    let bands: Vec<Band> = groups.iter().map(ModelGroup::band).collect();
    if bands.iter().all(|b| b.points.is_empty()) {
        return Ok(String::new());
    }
    let (title, y_label) = if layout.higher_is_better {
        ("validation log-likelihood", "nats per example")
    } else {
        ("validation −ELBO", "nats")
    };
    let svg = BandChart {
        title,
        x_label: "epoch",
        y_label,
        bands: &bands,
    }
    .svg()?;
    let arrangement = if bands.len() > MAX_OVERLAID {
        "one panel per model, the other models' means in grey"
    } else {
        "all models in one panel"
    };
    Ok(format!(
        "<h2 id=\"curves\">Learning curves</h2>\n<figure>{svg}<figcaption>Validation curves per \
         model: the line is the mean over seeds, the band spans the lowest to the highest seed \
         ({arrangement}). Runs stopped early leave fewer seeds at the later epochs.\
         </figcaption></figure>\n"
    ))
}

/// How many image bytes may still be embedded, and what happened to the images.
#[derive(Debug)]
pub(crate) struct ImageBudget {
    pub left: usize,
    pub embedded: usize,
    pub linked: usize,
}

/// Per model the grids of its first run (lowest seed) that has any.
pub(crate) fn grids_section(
    groups: &[ModelGroup],
    out_dir: &Path,
    budget: &mut ImageBudget,
) -> String {
    let mut html = String::new();
    for group in groups {
        let mut runs = group.runs.clone();
        runs.sort_by_key(|r| r.summary.seed());
        let Some((run, files)) = runs.iter().find_map(|r| {
            let files: Vec<_> = GRIDS
                .iter()
                .filter(|(f, _)| r.dir.join("plots").join(f).is_file())
                .collect();
            (!files.is_empty()).then_some((r, files))
        }) else {
            continue;
        };
        let seed = run
            .summary
            .seed()
            .map_or(String::new(), |s| format!(", seed {s}"));
        html.push_str(&format!(
            "<div class=\"model\"><h3>{}</h3>\n<div class=\"grids\">\n",
            escape(&group.label)
        ));
        for (file, caption) in files {
            let path = run.dir.join("plots").join(file);
            let caption = format!("{caption}{seed}");
            html.push_str(&image_figure(&path, &caption, out_dir, budget));
        }
        html.push_str("</div></div>\n");
    }
    if html.is_empty() {
        return html;
    }
    format!(
        "<h2 id=\"grids\">Samples and reconstructions</h2>\n<div class=\"models\">\n{html}</div>\n"
    )
}

/// One image, embedded while the budget lasts and linked after it.
fn image_figure(path: &Path, caption: &str, out_dir: &Path, budget: &mut ImageBudget) -> String {
    let link = escape(&relative(out_dir, path).display().to_string());
    let caption = escape(caption);
    match png_thumbnail(path, THUMBNAIL_WIDTH) {
        Ok(bytes) if bytes.len() * 4 / 3 <= budget.left => {
            let data = base64(&bytes);
            budget.left -= data.len();
            budget.embedded += 1;
            format!(
                "<figure><a href=\"{link}\"><img alt=\"{caption}\" \
                 src=\"data:image/png;base64,{data}\"></a><figcaption>{caption}</figcaption>\
                 </figure>\n"
            )
        }
        Ok(_) => {
            budget.linked += 1;
            format!(
                "<figure><figcaption>{caption}: <a href=\"{link}\">{link}</a> \
                 <span class=\"mark\">not embedded: size budget</span></figcaption></figure>\n"
            )
        }
        Err(e) => format!(
            "<figure><figcaption>{caption}: <span class=\"mark bad\">cannot read {link}: {}</span>\
             </figcaption></figure>\n",
            escape(&e.to_string())
        ),
    }
}

/// `to` relative to the folder `from` (both made absolute first), for links that keep
/// working when the report is opened from its folder.
pub(crate) fn relative(from: &Path, to: &Path) -> PathBuf {
    let absolute = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (from, to) = (absolute(from), absolute(to));
    let (a, b): (Vec<Component>, Vec<Component>) =
        (from.components().collect(), to.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return to;
    }
    let mut path: PathBuf = std::iter::repeat_n(Component::ParentDir, a.len() - common).collect();
    path.extend(&b[common..]);
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            dir.path().join("study/report"),
            dir.path().join("study/seed0/vae/plots"),
        );
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        assert_eq!(
            relative(&a, &b.join("x.png")),
            Path::new("../seed0/vae/plots/x.png")
        );
        assert_eq!(
            relative(&dir.path().join("study"), &b),
            Path::new("seed0/vae/plots")
        );
    }
}
