//! The fake providers `wagate` starts beside the gateway: one for each source whose send
//! settings point at this machine (`http://127.0.0.1:…`), answering there with the source's own
//! token, key and secrets, and posting its status webhooks back to the gateway. So
//! `POST /v1/messages` works out of the box with the bundled sample, and sources that point at a
//! real provider are left alone.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use shared::ports::Source;
use shared::send::SendSettings;

use super::{FakeGraph, FakeGraphOptions, FakeWaha, FakeWahaOptions};

/// A fake provider running for one source.
pub enum Bundled {
    /// A Graph API for a Meta source.
    Graph {
        /// The source it answers for.
        source: String,
        /// The server.
        server: FakeGraph,
    },
    /// A WAHA for a WAHA source.
    Waha {
        /// The source it answers for.
        source: String,
        /// The server.
        server: FakeWaha,
    },
}

impl std::fmt::Debug for Bundled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Bundled {
    /// One line for the banner.
    pub fn describe(&self) -> String {
        match self {
            Self::Graph { source, server } => format!(
                "fake Graph API http://{} for {source} (sent → delivered → read come back as webhooks)",
                server.addr()
            ),
            Self::Waha { source, server } => format!(
                "fake WAHA      http://{} for {source} (message.any and acks come back as webhooks)",
                server.addr()
            ),
        }
    }

    /// Stops it.
    pub async fn stop(&self) {
        match self {
            Self::Graph { server, .. } => server.stop().await,
            Self::Waha { server, .. } => server.stop().await,
        }
    }
}

/// The loopback address `url` names, if it names one with a port.
fn loopback(url: &str) -> Option<SocketAddr> {
    let parsed = url::Url::parse(url).ok()?;
    let port = parsed.port_or_known_default()?;
    let ip: IpAddr = match parsed.host()? {
        url::Host::Ipv4(ip) => ip.into(),
        url::Host::Ipv6(ip) => ip.into(),
        url::Host::Domain("localhost") => IpAddr::from([127, 0, 0, 1]),
        url::Host::Domain(_) => return None,
    };
    ip.is_loopback().then_some(SocketAddr::new(ip, port))
}

/// Starts a fake provider for every source of `sources` whose send settings point at this
/// machine; `gateway` is where their webhooks go (`http://127.0.0.1:3000`).
pub async fn start(sources: &[Source], gateway: &str) -> anyhow::Result<Vec<Bundled>> {
    let mut running = Vec::new();
    for source in sources {
        let id = source.id.as_str().to_owned();
        match &source.send {
            Some(SendSettings::Meta(meta)) => {
                let Some(bind) = loopback(&meta.graph_url) else {
                    continue;
                };
                let mut options = FakeGraphOptions::for_source(source, bind, gateway)?;
                options.access_token = meta.access_token.clone();
                if let Some(phone) = &meta.phone_number_id {
                    options.phone_number_id.clone_from(phone);
                }
                let server = FakeGraph::start(options).await.with_context(|| {
                    format!("the fake Graph API for `{id}` could not listen on {bind}")
                })?;
                running.push(Bundled::Graph { source: id, server });
            }
            Some(SendSettings::Waha(waha)) => {
                let Some(bind) = loopback(&waha.base_url) else {
                    continue;
                };
                let mut options = FakeWahaOptions::for_source(source, bind, gateway)?;
                options.api_key.clone_from(&waha.api_key);
                if !options.sessions.contains(&waha.session) {
                    options.sessions.push(waha.session.clone());
                }
                let server = FakeWaha::start(options).await.with_context(|| {
                    format!("the fake WAHA for `{id}` could not listen on {bind}")
                })?;
                running.push(Bundled::Waha { source: id, server });
            }
            None => {}
        }
    }
    Ok(running)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_get_a_fake() {
        assert_eq!(
            loopback("http://127.0.0.1:3002"),
            Some(SocketAddr::from(([127, 0, 0, 1], 3002)))
        );
        assert_eq!(
            loopback("http://localhost:3003/"),
            Some(SocketAddr::from(([127, 0, 0, 1], 3003)))
        );
        assert_eq!(loopback("https://graph.facebook.com"), None);
        assert_eq!(loopback("http://10.0.0.5:3000"), None);
    }
}
