//! How commands take a password (one line of standard input, or a prompt
//! without echo on a terminal) or hand out a one-time password link.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `PUBLIC_URL` | the web app's address; links point to its `/reset-password` page | `http://localhost:<port of LISTEN_ADDR>` |
//! | `PASSWORD_LINK_TTL_HOURS` | hours a setup or reset link works (1 to 720) | `24` |
//! | `PASSWORD_RESET_HOOK` | a program run for each link, to send it (see `ops::accounts::run_hook`) | none: the operator passes the link on |

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use url::Url;

use crate::config::ConfigError;
use crate::ops::accounts::{self, IssuedLink, LinkSettings};

/// Where one-time links point, how long they work, and who sends them.
#[derive(Debug, Clone, clap::Args)]
pub struct LinkArgs {
    /// The web app's public address; links point to its /reset-password page
    /// (default http://localhost:<port of LISTEN_ADDR>).
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Hours a setup or reset link works.
    #[arg(long, env = "PASSWORD_LINK_TTL_HOURS", default_value_t = 24)]
    pub password_link_ttl_hours: u32,
    /// A program run for each link, to send it: the link on its standard
    /// input, MEDICALPRO_LINK_EMAIL, _URL, _EXPIRES_AT and _PURPOSE in its
    /// environment.
    #[arg(long, env = "PASSWORD_RESET_HOOK")]
    pub password_reset_hook: Option<PathBuf>,
    /// The server's address, for the default PUBLIC_URL.
    #[arg(
        long,
        env = "LISTEN_ADDR",
        default_value = "127.0.0.1:8080",
        hide = true
    )]
    pub listen_addr: SocketAddr,
}

impl LinkArgs {
    pub fn settings(&self) -> Result<LinkSettings, ConfigError> {
        let public_url = match &self.public_url {
            Some(raw) => Url::parse(raw)
                .ok()
                .filter(|url| {
                    matches!(url.scheme(), "http" | "https")
                        && url.has_host()
                        && url.query().is_none()
                        && url.fragment().is_none()
                })
                .ok_or_else(|| {
                    ConfigError::new(
                        "PUBLIC_URL",
                        "must be an http:// or https:// address without query or fragment",
                    )
                })?,
            None => Url::parse(&format!("http://localhost:{}", self.listen_addr.port()))
                .map_err(|e| ConfigError::new("LISTEN_ADDR", e.to_string()))?,
        };
        if !(1..=720).contains(&self.password_link_ttl_hours) {
            return Err(ConfigError::new(
                "PASSWORD_LINK_TTL_HOURS",
                "must be between 1 and 720",
            ));
        }
        Ok(LinkSettings {
            public_url,
            lifetime: chrono::Duration::hours(i64::from(self.password_link_ttl_hours)),
            hook: self.password_reset_hook.clone(),
        })
    }
}

/// Prints a link (on standard output, its explanation on standard error,
/// unless `json`: the caller prints it), then runs the hook if there is
/// one. Exit status 1 when the hook fails: the link printed still works.
pub async fn hand_out(link: &IssuedLink, settings: &LinkSettings, json: bool) -> ExitCode {
    if !json {
        println!("{}", link.link);
        eprintln!(
            "one-time {} link for {}: it sets the password once, until {}",
            link.purpose.as_str(),
            link.email,
            link.expires_at.to_rfc3339()
        );
    }
    let Some(hook) = &settings.hook else {
        return ExitCode::SUCCESS;
    };
    match accounts::run_hook(hook, link).await {
        Ok(()) => {
            eprintln!("the link was handed to PASSWORD_RESET_HOOK");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}; the link printed still works: pass it on yourself");
            ExitCode::FAILURE
        }
    }
}

/// One line from standard input; on a terminal, asks for it without echo.
pub fn read_password(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(rpassword::prompt_password(format!("{prompt}: "))?);
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::LinkArgs;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        links: LinkArgs,
    }

    fn settings(args: &[&str]) -> Result<crate::ops::accounts::LinkSettings, String> {
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        Command::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .links
            .settings()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn links_point_to_the_reset_page_with_the_token_in_the_fragment() {
        let links = settings(&["--public-url", "https://app.example.fr/"]).unwrap();
        assert_eq!(
            links.link("abc"),
            "https://app.example.fr/reset-password#token=abc"
        );
        let default = settings(&["--listen-addr", "0.0.0.0:9000"]).unwrap();
        assert_eq!(
            default.link("abc"),
            "http://localhost:9000/reset-password#token=abc"
        );
        assert_eq!(default.lifetime, chrono::Duration::hours(24));
    }

    #[test]
    fn a_bad_public_url_or_lifetime_is_named() {
        for bad in ["ftp://x.fr", "not a url", "https://x.fr/?a=1"] {
            let error = settings(&["--public-url", bad]).unwrap_err();
            assert!(error.starts_with("PUBLIC_URL"), "{bad}: {error}");
        }
        let error = settings(&["--password-link-ttl-hours", "0"]).unwrap_err();
        assert!(error.starts_with("PASSWORD_LINK_TTL_HOURS"), "{error}");
    }
}
