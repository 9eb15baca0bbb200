//! The e-mail channel: one message per alert over SMTP (lettre, rustls): STARTTLS, TLS or
//! plain, with optional login. A permanent SMTP refusal drops the alert; anything else retries.

use std::time::Duration;

use sovereign_core::notify::{self, Alert, Outcome};

use super::settings::{EmailTarget, SmtpTls};
use crate::support::error_chain;

pub(super) async fn send(e: &EmailTarget, timeout: Duration, alert: &Alert) -> (Outcome, String) {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
    let (subject, body) = notify::email_subject_body(alert);
    let mut message = lettre::Message::builder()
        .from(e.from.clone())
        .subject(subject)
        .header(lettre::message::header::ContentType::TEXT_PLAIN);
    for to in &e.to {
        message = message.to(to.clone());
    }
    let message = match message.body(body) {
        Ok(m) => m,
        Err(err) => return (Outcome::Refused, format!("cannot build the message: {err}")),
    };
    let builder = match e.tls {
        SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&e.host),
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&e.host),
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &e.host,
        )),
    };
    let mut builder = match builder {
        Ok(b) => b.port(e.port).timeout(Some(timeout)),
        Err(err) => {
            return (
                Outcome::Refused,
                format!("SMTP setup: {}", error_chain(&err)),
            )
        }
    };
    if let Some((user, pass)) = &e.credentials {
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            user.clone(),
            pass.clone(),
        ));
    }
    match builder.build().send(message).await {
        Ok(resp) => (Outcome::Accepted, format!("SMTP {}", resp.code())),
        Err(err) => {
            let outcome = if err.is_permanent() {
                Outcome::Refused
            } else {
                Outcome::Network
            };
            (
                outcome,
                format!("SMTP {}:{}: {}", e.host, e.port, error_chain(&err)),
            )
        }
    }
}
