//! The command line of a container, as Docker and the kubelet build it.

use crate::imagemap::ImageEntry;

/// `command` replaces the image's entrypoint (and drops its default args); `args` replace
/// the image's default args. `$(VAR)` references are expanded from the container's env.
pub fn build_command(
    image: &ImageEntry,
    command: Option<&[String]>,
    args: Option<&[String]>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let (entrypoint, default_args): (&[String], &[String]) = match command {
        Some(command) if !command.is_empty() => (command, &[]),
        _ => (&image.command, &image.args),
    };
    let args = match args {
        Some(args) if !args.is_empty() => args,
        _ => default_args,
    };
    entrypoint
        .iter()
        .chain(args)
        .map(|s| expand(s, env))
        .collect()
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, an undefined reference is
/// left as written, and `$$` escapes a `$`.
pub fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some((_, '$')) => {
                chars.next();
                out.push('$');
            }
            Some((_, '(')) => {
                let rest = &s[i + 2..];
                match rest.find(')') {
                    Some(end) => {
                        let name = &rest[..end];
                        match env(name) {
                            Some(value) => out.push_str(&value),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        // Skip `(`, the name and `)`.
                        for _ in 0..name.chars().count() + 2 {
                            chars.next();
                        }
                    }
                    None => out.push('$'),
                }
            }
            _ => out.push('$'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageEntry {
        ImageEntry {
            command: vec!["entry".into()],
            args: vec!["default".into()],
            ..ImageEntry::default()
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn docker_semantics() {
        let img = image();
        assert_eq!(
            build_command(&img, None, None, &no_env),
            ["entry", "default"]
        );
        let args = s(&["a", "b"]);
        assert_eq!(
            build_command(&img, None, Some(&args), &no_env),
            ["entry", "a", "b"]
        );
        let cmd = s(&["run"]);
        assert_eq!(build_command(&img, Some(&cmd), None, &no_env), ["run"]);
        assert_eq!(
            build_command(&img, Some(&cmd), Some(&args), &no_env),
            ["run", "a", "b"]
        );
        assert_eq!(
            build_command(&img, Some(&[]), Some(&[]), &no_env),
            ["entry", "default"]
        );
    }

    #[test]
    fn expands_variables_like_kubernetes() {
        let env = |n: &str| match n {
            "PORT" => Some("8080".to_owned()),
            "E" => Some(String::new()),
            _ => None,
        };
        assert_eq!(expand("--port=$(PORT)", &env), "--port=8080");
        assert_eq!(expand("$(MISSING)/x", &env), "$(MISSING)/x");
        assert_eq!(expand("$$(PORT)", &env), "$(PORT)");
        assert_eq!(expand("a$(E)b", &env), "ab");
        assert_eq!(expand("$HOME $(PORT", &env), "$HOME $(PORT");
        assert_eq!(expand("é$(PORT)ü", &env), "é8080ü");
        let cmd = s(&["serve", "$(PORT)"]);
        assert_eq!(
            build_command(&image(), Some(&cmd), None, &env),
            ["serve", "8080"]
        );
    }
}
