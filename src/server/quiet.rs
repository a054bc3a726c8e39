//! Log lines russh writes at WARN for what real clients do every time and
//! is harmless: PuTTY's `simple@putty.projects.tartarus.org` channel
//! request (telling the server the session is simple, want-reply off) and
//! its `winadj@putty.projects.tartarus.org` window probe. russh answers
//! both with a failure, which PuTTY expects, and logs "unknown channel
//! request" with no handler hook to stop it; a WARN on every PuTTY
//! connection hides the warnings that matter. This per-layer filter drops
//! exactly those lines; every other russh warning still shows.

use tracing::{Event, Level, Metadata};

use tracing_subscriber::layer::{Context, Filter};

/// The exact messages dropped (russh's text for the requests above).
const HARMLESS: &[&str] = &[
    "unknown channel request simple@putty.projects.tartarus.org",
    "unknown channel request winadj@putty.projects.tartarus.org",
];

/// A `tracing_subscriber` filter that drops [`HARMLESS`] russh warnings.
pub struct KnownHarmless;

impl<S> Filter<S> for KnownHarmless {
    fn enabled(&self, _meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        // russh logs through the `log` crate: bridged, its lines carry
        // the target `log`, so the message alone (exact) decides.
        if *event.metadata().level() != Level::WARN {
            return true;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        !is_harmless(&message.0)
    }
}

fn is_harmless(message: &str) -> bool {
    HARMLESS.contains(&message)
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_putty_requests_are_quiet() {
        assert!(is_harmless(
            "unknown channel request simple@putty.projects.tartarus.org"
        ));
        assert!(!is_harmless("unknown channel request x11-req"));
        assert!(!is_harmless("Certificate signature is invalid"));
    }
}
