//! Fills the `@NAME@` placeholders of the embedded shell scripts.

/// Replaces every `@KEY@` with its value; a placeholder left unfilled is a bug in pideploy and is
/// reported with its name rather than shipped to a Pi.
pub fn render(template: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("@{k}@"), v);
    }
    // Placeholders are upper-case words between '@'; e-mail-like text in comments never matches.
    let bytes = out.as_bytes();
    for (i, _) in out.match_indices('@') {
        let rest = &bytes[i + 1..];
        let len = rest
            .iter()
            .take_while(|b| b.is_ascii_uppercase() || **b == b'_')
            .count();
        if len > 0 && rest.get(len) == Some(&b'@') {
            return Err(format!(
                "unfilled placeholder @{}@",
                String::from_utf8_lossy(&rest[..len])
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_and_detects_leftovers() {
        assert_eq!(render("a @X@ b", &[("X", "1")]).unwrap(), "a 1 b");
        assert!(render("@X@ @Y@", &[("X", "1")])
            .unwrap_err()
            .contains("@Y@"));
        assert_eq!(render("pi@host", &[]).unwrap(), "pi@host");
    }
}
