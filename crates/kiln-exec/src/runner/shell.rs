//! How a `run:` script becomes a command line, per `shell:`.

use kiln_model::workflow::Shell;
use std::path::Path;

/// The argv running `script` with `shell`. `Err` names a shell that cannot
/// run here.
pub fn command(shell: &Shell, script: &Path) -> Result<Vec<String>, String> {
    let path = script.display().to_string();
    Ok(match shell {
        Shell::Bash => {
            vec![
                "bash".into(),
                "--noprofile".into(),
                "--norc".into(),
                "-eo".into(),
                "pipefail".into(),
                path,
            ]
        }
        Shell::Sh => vec!["sh".into(), "-e".into(), path],
        Shell::Python => vec!["python3".into(), path],
        Shell::Pwsh => vec!["pwsh".into(), "-command".into(), format!(". '{path}'")],
        Shell::Powershell | Shell::Cmd => {
            let name = if *shell == Shell::Cmd {
                "cmd"
            } else {
                "powershell"
            };
            return Err(format!(
                "shell `{name}` is only available on Windows; use bash, sh, python or pwsh"
            ));
        }
        Shell::Custom(template) => {
            let argv: Vec<String> = template
                .split_whitespace()
                .map(|w| w.replace("{0}", &path))
                .collect();
            if argv.is_empty() {
                return Err("custom shell is empty".into());
            }
            argv
        }
    })
}

/// The file name for a script, with the extension its shell expects
/// (python refuses nothing, but pwsh needs `.ps1`).
pub fn script_extension(shell: &Shell) -> &'static str {
    match shell {
        Shell::Python => "py",
        Shell::Pwsh | Shell::Powershell => "ps1",
        Shell::Cmd => "cmd",
        Shell::Bash | Shell::Sh | Shell::Custom(_) => "sh",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_is_strict() {
        let argv = command(&Shell::Bash, Path::new("/t/s.sh")).unwrap();
        assert_eq!(
            argv,
            [
                "bash",
                "--noprofile",
                "--norc",
                "-eo",
                "pipefail",
                "/t/s.sh"
            ]
        );
    }

    #[test]
    fn custom_replaces_placeholder() {
        let argv = command(&Shell::Custom("perl -w {0}".into()), Path::new("/t/s")).unwrap();
        assert_eq!(argv, ["perl", "-w", "/t/s"]);
    }

    #[test]
    fn windows_shells_are_refused_clearly() {
        let e = command(&Shell::Cmd, Path::new("/t/s")).unwrap_err();
        assert!(e.contains("only available on Windows"), "{e}");
    }
}
