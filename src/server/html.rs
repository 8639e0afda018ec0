//! Escaping and the page frame. Every value from the store passes through [`esc`] (and the
//! redactor before it), so nothing in a deploy's output can inject markup.

use std::fmt::Write;

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;max-width:1200px;color:#222}\
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border-bottom:1px solid #ddd;\
padding:.35rem .5rem;text-align:left;vertical-align:top}th{background:#f4f4f4}\
pre{background:#f7f7f7;padding:.75rem;overflow-x:auto;white-space:pre-wrap}\
nav a{margin-right:1rem}.succeeded{color:#176f2c}.failed,.interrupted{color:#b00020}\
.cancelled{color:#666}.ok{color:#176f2c}.bad{color:#b00020}code{font-size:.9em}";

/// A whole page: title, navigation, body.
pub fn page(title: &str, body: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{} · catalog-chatops</title><style>{STYLE}</style></head><body>\
         <nav><a href=\"/\">Deploys</a><a href=\"/locks\">Locks</a><a href=\"/audit\">Audit log</a></nav>\
         <h1>{}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::esc("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
