//! The page's building blocks: escaping (every string from a run folder goes through
//! [`escape`]), base64 for embedded images, and the inline style sheet and table-sorting
//! script, so that the page needs no network.

/// `text` safe to place in HTML text or a quoted attribute.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648), for `data:` URIs.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A number cell that sorts by its value: `data-v` holds the number, the text what is shown.
pub(crate) fn number_cell(value: Option<f64>, text: &str) -> String {
    match value.filter(|v| v.is_finite()) {
        Some(v) => format!("<td class=\"num\" data-v=\"{v}\">{}</td>", escape(text)),
        None => format!("<td class=\"num\">{}</td>", escape(text)),
    }
}

/// The whole page around `body`.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n\
         <script>{SCRIPT}</script>\n</body>\n</html>\n",
        escape(title)
    )
}

const STYLE: &str = r#"
body { font-family: "DejaVu Sans", Verdana, Arial, sans-serif; margin: 24px auto; max-width: 1240px; padding: 0 16px; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta { color: #555; font-size: 0.92em; }
table { border-collapse: collapse; margin: 12px 0; font-size: 0.84em; }
.wide { overflow-x: auto; } td.flow { max-width: 230px; font-size: 0.92em; color: #444; }
th, td { border: 1px solid #d4d4d4; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \2195"; color: #aaa; }
th[data-dir="asc"]::after { content: " \25B2"; color: #333; } th[data-dir="desc"]::after { content: " \25BC"; color: #333; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.baseline td { background: #f7fbff; } tr.unfinished td { color: #888; font-style: italic; }
.mark { display: inline-block; font-size: 0.78em; padding: 0 5px; margin-left: 4px; border-radius: 3px; background: #fff3cd; color: #7a5b00; border: 1px solid #e9d48a; font-style: normal; }
.mark.bad { background: #fde2e1; color: #8a1c17; border-color: #f0b4b0; }
figure { margin: 12px 0; } figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.88em; margin-top: 4px; max-width: 1000px; }
.models { display: flex; flex-wrap: wrap; gap: 10px 22px; }
.model h3 { margin: 8px 0 4px; font-size: 1em; }
.grids { display: flex; gap: 8px; } .grids figure { margin: 0; width: 180px; }
.grids img { width: 180px; border: 1px solid #ccc; } .grids figcaption { font-size: 0.78em; }
details { margin: 6px 0; border: 1px solid #e2e2e2; border-radius: 4px; padding: 4px 10px; }
details > summary { cursor: pointer; font-weight: 600; }
pre { background: #f7f7f7; padding: 8px; overflow-x: auto; font-size: 0.85em; max-height: 420px; }
code { font-size: 0.92em; }
"#;

/// Sorts a `table.sortable` by the clicked column: numerically by `data-v` where the cells
/// have it, else by text; rows without a value go last. The mark it leaves on `<html>` tells
/// a test that the script ran to its end.
const SCRIPT: &str = r#"
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.dataset.dir !== "asc";
      table.querySelectorAll("th").forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = asc ? "asc" : "desc";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var key = function (row) {
        var cell = row.cells[col];
        if (!cell) return null;
        if (cell.dataset.v !== undefined) return parseFloat(cell.dataset.v);
        return cell.classList.contains("num") ? null : cell.textContent.trim();
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) return (x === null) - (y === null);
        var r = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
        return asc ? r : -r;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
document.documentElement.dataset.sortable = "ready";
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<b a='1'>"x" & y</b>"#),
            "&lt;b a=&#39;1&#39;&gt;&quot;x&quot; &amp; y&lt;/b&gt;"
        );
        assert_eq!(escape("Δ −ELBO"), "Δ −ELBO");
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded, "{plain}");
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }
}
