//! The whole pipeline in one process: the HTTP front, one set of Lambda-like pollers per stage,
//! the periodic sweep, wired exactly as the Lambdas wire them (the same stage types and the same
//! configuration variables), over the embedded backend or DynamoDB/SQS.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_adapters::env::Env;
use aws_adapters::infra::{InfraError, Infrastructure, MetricsFunctions};
use shared::admin::Admin;
use shared::delivery::buffer::Buffer;
use shared::delivery::deliver::{Deliver, HttpSender};
use shared::delivery::endpoints::Endpoints;
use shared::delivery::fanout::Fanout;
use shared::delivery::request::BodyForm;
use shared::delivery::ssrf::NetworkPolicy;
use shared::pipeline::ingest::Ingest;
use shared::pipeline::track::Track;
use shared::pipeline::track::sweep::Sweep;
use shared::ports::media::{MediaStore, MemoryMediaStore, SignedUrls};
use shared::ports::{BlobStore, DocumentStore, Queue};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::Stores;
use crate::clock::Clock;
use crate::config::LocalConfig;
use crate::poller::{PollerSpec, Stage, poll};
use crate::server::{Front, serve};
use crate::stats::{CountingQueue, CountingSender, StageStats, Stats};

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Sources, endpoints and settings.
    pub config: LocalConfig,
    /// Pollers per stage.
    pub concurrency: usize,
    /// How often the sweep runs (`None`: only on [`Gateway::sweep_now`]).
    pub sweep_every: Option<Duration>,
    /// `MaximumBatchingWindowInSeconds` of the track, fan-out and deliver pollers (1 s in the
    /// template).
    pub batching_window: Duration,
    /// Visibility timeout for every poller instead of the template's (180 s; delivery 720 s):
    /// shorter makes crash recovery quicker in the fault run.
    pub visibility: Option<Duration>,
    /// Delivery retry delays instead of the default schedule (30 s, 2 min, 10 min, …).
    pub retry_schedule: Option<Vec<Duration>>,
    /// The pipeline clock.
    pub clock: Clock,
    /// Run the media stage: inbound media files are fetched and served at signed URLs of
    /// this gateway (kept in memory, under `media_dir`, or in the AWS backend's bucket).
    pub media: bool,
    /// Where media files are kept on disk (`None`: in memory, or the AWS backend's bucket).
    pub media_dir: Option<std::path::PathBuf>,
    /// How often expired documents and blobs are freed from an embedded backend (`None`:
    /// never; reads skip them either way).
    pub evict_every: Option<Duration>,
}

impl Options {
    /// Defaults for `config`: two pollers per stage, the template's windows, a sweep a minute.
    pub fn new(config: LocalConfig) -> Self {
        Self {
            config,
            concurrency: 2,
            sweep_every: Some(Duration::from_secs(60)),
            batching_window: Duration::from_secs(1),
            visibility: None,
            retry_schedule: None,
            clock: Clock::system(),
            media: true,
            media_dir: None,
            evict_every: Some(Duration::from_secs(60)),
        }
    }
}

/// What a shutdown left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Messages still in the work queues (kept by SQS; lost with the embedded backend).
    pub pending: u64,
}

/// A running pipeline.
#[derive(Debug)]
pub struct Gateway {
    addr: SocketAddr,
    stores: Stores,
    stats: Arc<Stats>,
    clock: Clock,
    sweep: Arc<Sweep>,
    stop_front: watch::Sender<bool>,
    stop_pollers: watch::Sender<bool>,
    front: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
}

/// The pieces built from the configuration.
struct Stages {
    ingest: Ingest,
    admin: Option<Admin>,
    track: Track,
    buffer: Buffer,
    fanout: Fanout,
    deliver: Deliver,
    sweep: Sweep,
    media: Option<shared::media::Media>,
}

/// Names every function's configuration needs, answered for local mode; everything else comes
/// from the settings. (`ENDPOINT_CACHE_SECONDS` is answered by [`endpoint_cache`], for the one
/// cache every stage reads endpoints through.)
fn lookup(
    settings: &BTreeMap<String, String>,
    media: bool,
) -> impl Fn(&str) -> Option<String> + '_ {
    move |k: &str| match k {
        "TABLE_NAME" => Some("wagate-local".into()),
        "INBOUND_QUEUE_URL" | "BUFFER_QUEUE_URL" | "OUTBOUND_QUEUE_URL" | "DELIVERY_QUEUE_URL"
        | "DELIVERY_DLQ_URL" => Some(format!("local:{k}")),
        "MEDIA_QUEUE_URL" if media => Some(format!("local:{k}")),
        "MEDIA_BUCKET" if media => Some(LOCAL_MEDIA.into()),
        _ => settings.get(k).cloned(),
    }
}

/// How long the stages reuse an endpoint they read: `ENDPOINT_CACHE_SECONDS` when set; else
/// the longest allowed (300 s) on the embedded backends, where nothing but this process
/// changes endpoints (the memory stores live in it; a data directory is locked by one
/// gateway) and every change it makes goes through the cache and clears it; else (DynamoDB,
/// which other gateways and the Lambdas may share) not at all.
///
/// Every stage reading endpoints from the store per event cost a document read per delivery
/// and an index listing per outbound batch (on SQLite, an eighth of its reads).
fn endpoint_cache(
    settings: &BTreeMap<String, String>,
    stores: &Stores,
) -> anyhow::Result<Duration> {
    Ok(if settings.contains_key("ENDPOINT_CACHE_SECONDS") {
        Env(|k: &str| settings.get(k).cloned()).endpoint_cache()?
    } else if stores.alone_on_its_documents() {
        Duration::from_secs(300)
    } else {
        Duration::ZERO
    })
}

/// How delivery tasks carry their bodies: `DELIVERY_BODY_FORM` when set; else, on the embedded
/// backends, whose queues only this process's deliver reads, as the document itself (copied in
/// and out, not escaped into a string and back); else (SQS queues, which a deliver of an older
/// version may read) as a string.
fn body_form(settings: &BTreeMap<String, String>, stores: &Stores) -> anyhow::Result<BodyForm> {
    Ok(if settings.contains_key("DELIVERY_BODY_FORM") {
        Env(|k: &str| settings.get(k).cloned()).body_form()?
    } else if stores.alone_on_its_documents() {
        BodyForm::Json
    } else {
        BodyForm::Text
    })
}

/// The media store's name in local mode's configuration (`MEDIA_BUCKET`).
const LOCAL_MEDIA: &str = "local-media";

/// The stores as stages are built on them ([`Infrastructure`]): the queue URLs of [`lookup`]
/// name the local queues, and the delivery dead-letter queue and HTTP sender count what goes
/// through them for the status line.
struct Local<'a> {
    stores: &'a Stores,
    stats: &'a Arc<Stats>,
    media: Option<Arc<dyn MediaStore>>,
    /// The one endpoint cache of the process ([`endpoint_cache`]).
    endpoints: Endpoints,
}

impl Infrastructure for Local<'_> {
    fn docs(&self) -> Arc<dyn DocumentStore> {
        self.stores.docs.clone()
    }

    /// Every stage reads endpoints through one cache, whose time [`endpoint_cache`] set.
    fn endpoints(&self, _ttl: Duration) -> Endpoints {
        self.endpoints.clone()
    }

    fn may_hold_unscoped_dedup_keys(&self) -> bool {
        self.stores.may_hold_unscoped_dedup_keys()
    }

    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.stores.blobs.clone()
    }

    fn queue(&self, url: &str) -> Result<Arc<dyn Queue>, InfraError> {
        Ok(match url.strip_prefix("local:") {
            Some("INBOUND_QUEUE_URL") => self.stores.inbound().queue.clone(),
            Some("BUFFER_QUEUE_URL") => self.stores.buffer().queue.clone(),
            Some("OUTBOUND_QUEUE_URL") => self.stores.outbound().queue.clone(),
            Some("DELIVERY_QUEUE_URL") => self.stores.delivery().queue.clone(),
            Some("MEDIA_QUEUE_URL") => self.stores.media().queue.clone(),
            Some("DELIVERY_DLQ_URL") => Arc::new(CountingQueue {
                inner: self.stores.delivery().dead_letter.clone(),
                stats: self.stats.clone(),
            }),
            _ => return Err(InfraError::NoQueue(url.to_owned())),
        })
    }

    fn http(&self, network: NetworkPolicy) -> Result<Arc<dyn HttpSender>, InfraError> {
        Ok(Arc::new(CountingSender {
            inner: aws_adapters::infra::http_sender(network)?,
            stats: self.stats.clone(),
        }))
    }

    /// Local mode reaches providers on this machine too (WAHA on localhost, fake servers).
    fn provider_api(&self) -> Result<Arc<dyn shared::send::ProviderApi>, InfraError> {
        aws_adapters::infra::provider_api_client(NetworkPolicy::AllowLoopback)
    }

    /// This process's timeline, kept from the gateway's start.
    /// This process's timeline, whatever functions are named (local mode runs them all here).
    fn metrics(
        &self,
        _functions: &MetricsFunctions,
    ) -> Option<Arc<dyn shared::ports::MetricsSource>> {
        shared::metrics::keep_timeline();
        Some(Arc::new(shared::metrics::timeline::ProcessMetrics))
    }

    /// The one media store of this gateway (see [`Options::media`]).
    fn media_store(&self, bucket: &str) -> Result<Arc<dyn MediaStore>, InfraError> {
        match (&self.media, bucket) {
            (Some(store), LOCAL_MEDIA) => Ok(store.clone()),
            _ => Err(InfraError::NoMediaStore(bucket.to_owned())),
        }
    }
}

async fn build(
    stores: &Stores,
    options: &Options,
    stats: &Arc<Stats>,
    media: Option<Arc<dyn MediaStore>>,
) -> anyhow::Result<Stages> {
    let settings = &options.config.settings;
    let on = media.is_some();
    let lookup = |settings| lookup(settings, on);
    let infra = Local {
        stores,
        stats,
        media,
        endpoints: Endpoints::cached(stores.docs.clone(), endpoint_cache(settings, stores)?),
    };
    let infra: &dyn Infrastructure = &infra;
    let ingest = ingest::build(
        &ingest::Config::with_sources(options.config.sources.clone(), &Env(lookup(settings)))?,
        infra,
    )?;
    let track = track::build(&track::Config::from_lookup(lookup(settings))?, infra).await?;
    let body_form = body_form(settings, stores)?;
    let mut fanout_config = fanout::Config::from_lookup(lookup(settings))?;
    fanout_config.body_form = body_form;
    let fanout = fanout::build(&fanout_config, infra)?;
    let mut buffer_config = buffer::Config::from_lookup(lookup(settings))?;
    buffer_config.body_form = body_form;
    let buffer = buffer::build(&buffer_config, infra)?;
    // Local mode delivers to receivers on this machine too.
    let mut deliver_config = deliver::Config::from_lookup(lookup(settings))?;
    deliver_config.deliver.network = NetworkPolicy::AllowLoopback;
    if let Some(schedule) = &options.retry_schedule {
        deliver_config.deliver.retry.schedule.clone_from(schedule);
    }
    let deliver = deliver::build(&deliver_config, infra)?;
    let sweep = sweep::build(&sweep::Config::from_lookup(lookup(settings))?, infra)?;
    // The management API is on when keys are configured (the sample has a demo key).
    let admin = if settings.contains_key("ADMIN_API_KEYS") {
        let mut config = admin::Config::from_lookup(lookup(settings))?;
        config.admin.network = NetworkPolicy::AllowLoopback;
        config.sources.clone_from(&options.config.sources);
        Some(admin::build(&config, infra)?)
    } else {
        None
    };
    let media = if on {
        let env = Env(lookup(settings));
        let config = media::Config {
            table_name: "wagate-local".into(),
            bucket: LOCAL_MEDIA.into(),
            buffer_queue_url: "local:BUFFER_QUEUE_URL".into(),
            blob_ttl: env.duration("RAW_TTL_DAYS", 7, 0, 24 * 3600)?,
            media: env.media()?,
            conversations: env.conversations()?,
            sources: options.config.sources.clone(),
        };
        let mut stage = media::build(&config, infra)?;
        let clock = options.clock.clone();
        stage.clock = shared::clock::Clock::from_fn(move || clock.now());
        Some(stage)
    } else {
        None
    };
    Ok(Stages {
        ingest,
        admin,
        media,
        track,
        buffer,
        fanout,
        deliver,
        sweep,
    })
}

/// A media store and, when the gateway serves its files itself, their signed URLs.
type LocalMedia = (Option<Arc<dyn MediaStore>>, Option<SignedUrls>);

/// A new key for signing media URLs.
fn new_url_key() -> anyhow::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(key)
}

/// The key media URLs are signed with when files are kept under `dir`: made once and kept in
/// `dir/.url-key` (readable by its owner only), so URLs handed out stay valid after a restart.
fn url_key(dir: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    use anyhow::Context as _;
    let path = dir.join(".url-key");
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = new_url_key()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(
        &mut options
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?,
        &key,
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

/// The gateway's media store and, when it serves the files itself, their signed URLs: the AWS
/// backend's bucket (presigned URLs), else files under `media_dir` or in memory, at
/// `http://{addr}/media/…` signed with a key made for this process.
fn media_store(stores: &Stores, options: &Options, addr: SocketAddr) -> anyhow::Result<LocalMedia> {
    if !options.media {
        return Ok((None, None));
    }
    if let Some(bucket) = &stores.media_bucket {
        return Ok((Some(bucket.store.clone()), None));
    }
    let secret = match &options.media_dir {
        Some(dir) => url_key(dir)?,
        None => new_url_key()?,
    };
    // A gateway listening on every interface is reached on loopback from this machine.
    let host = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let urls = SignedUrls::new(format!("http://{host}"), secret);
    let store: Arc<dyn MediaStore> = match &options.media_dir {
        Some(dir) => Arc::new(crate::media::DiskMediaStore::new(dir.clone(), urls.clone())),
        None => Arc::new(MemoryMediaStore::new(urls.clone())),
    };
    Ok((Some(store), Some(urls)))
}

/// Creates the configured endpoints, or updates them where the file changed (stored state such
/// as a 410-disable is kept).
pub async fn apply_endpoints(
    endpoints: &Endpoints,
    config: &LocalConfig,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    for spec in &config.endpoints {
        let wanted = spec.to_endpoint(now)?;
        let existing = endpoints.get(&spec.id, now).await?;
        let (endpoint, version) = match existing {
            None => (wanted, None),
            Some((mut stored, version)) => {
                let before = stored.clone();
                stored.url = wanted.url;
                stored.description = wanted.description;
                stored.event_types = wanted.event_types;
                stored.batching = wanted.batching;
                stored.headers = wanted.headers;
                if stored.secrets.first().map(|s| &s.secret) != Some(&spec.secret) {
                    stored.secrets = wanted.secrets;
                }
                if stored == before {
                    continue;
                }
                stored.updated_at = now;
                (stored, Some(version))
            }
        };
        if !endpoints.put(&endpoint, version, now).await? {
            anyhow::bail!(
                "endpoint `{}` changed while being applied; start again",
                spec.id
            );
        }
    }
    Ok(())
}

impl Gateway {
    /// Opens nothing itself: runs on `stores`, serving webhooks on `listener`.
    pub async fn start(
        stores: Stores,
        listener: TcpListener,
        options: Options,
    ) -> anyhow::Result<Self> {
        let stats = Arc::new(Stats::default());
        let addr = listener.local_addr()?;
        let (media_store, media_urls) = media_store(&stores, &options, addr)?;
        let stages = build(&stores, &options, &stats, media_store.clone()).await?;
        // A backend that fails now and then (a flaky network, a fault run) does not stop the
        // start: applying the configured endpoints is idempotent, so it is simply tried again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match apply_endpoints(
                &stages.fanout.endpoints,
                &options.config,
                options.clock.now(),
            )
            .await
            {
                Ok(()) => break,
                Err(e) if attempt < 8 => {
                    tracing::warn!(error = %e, attempt, "applying the configured endpoints failed; trying again");
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
                }
                Err(e) => return Err(e),
            }
        }
        let (stop_front, front_rx) = watch::channel(false);
        let media_routes = match (&media_store, media_urls) {
            (Some(store), Some(urls)) => Some(crate::media::media_router(
                store.clone(),
                urls,
                options.clock.clone(),
            )),
            _ => None,
        };
        let (stop_pollers, pollers_rx) = watch::channel(false);
        let front = tokio::spawn(serve(
            listener,
            Front {
                ingest: Arc::new(stages.ingest),
                clock: options.clock.clone(),
                stats: stats.clone(),
                admin: stages.admin.map(Arc::new),
                media: media_routes,
            },
            front_rx,
            Duration::from_secs(10),
        ));
        let window = options.batching_window;
        let mut stage_list: Vec<(Arc<dyn Stage>, Duration, &Arc<StageStats>)> = vec![
            (Arc::new(stages.track), window, &stats.track),
            (Arc::new(stages.buffer), Duration::ZERO, &stats.buffer),
            (Arc::new(stages.fanout), window, &stats.fanout),
            (Arc::new(stages.deliver), window, &stats.deliver),
        ];
        // No batching window: a message with media waits for its file already.
        if let Some(media) = stages.media {
            stage_list.push((Arc::new(media), Duration::ZERO, &stats.media));
        }
        let mut tasks = Vec::new();
        for (pair, (stage, window, counters)) in stores.queues.iter().zip(stage_list) {
            let spec = PollerSpec {
                batch_size: 10,
                window,
                visibility: options.visibility.unwrap_or(pair.spec.visibility),
                concurrency: options.concurrency.max(1),
            };
            for _ in 0..spec.concurrency {
                tasks.push(tokio::spawn(poll(
                    spec,
                    pair.queue.clone(),
                    stage.clone(),
                    options.clock.clone(),
                    counters.clone(),
                    pollers_rx.clone(),
                )));
            }
        }
        let sweep = Arc::new(stages.sweep);
        if let Some(every) = options.sweep_every {
            let (sweep, clock, stats, mut stop) = (
                sweep.clone(),
                options.clock.clone(),
                stats.clone(),
                pollers_rx,
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(every) => {}
                        _ = stop.changed() => return,
                    }
                    match sweep.run(clock.now()).await {
                        Ok(n) => stats.swept.add(u64::try_from(n).unwrap_or(0)),
                        Err(e) => tracing::warn!(error = %e, "sweep failed; next run retries"),
                    }
                }
            }));
        }
        if let Some(every) = options.evict_every {
            let (expiry, clock, stats, mut stop) = (
                stores.expiry.clone(),
                options.clock.clone(),
                stats.clone(),
                stop_pollers.subscribe(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(every) => {}
                        _ = stop.changed() => return,
                    }
                    match expiry.evict(clock.now()).await {
                        Ok(n) => stats.evicted.add(n),
                        Err(e) => tracing::warn!(error = %e, "freeing expired items failed; next run retries"),
                    }
                }
            }));
        }
        Ok(Self {
            addr,
            stores,
            stats,
            clock: options.clock,
            sweep,
            stop_front,
            stop_pollers,
            front,
            tasks,
        })
    }

    /// Where webhooks are accepted (`http://{addr}/webhooks/{source_id}`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// The stores and queues.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The pipeline clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Runs the sweep once now (at the pipeline clock's time); returns conversations ended.
    pub async fn sweep_now(&self) -> anyhow::Result<usize> {
        let n = self.sweep.run(self.clock.now()).await?;
        self.stats.swept.add(u64::try_from(n).unwrap_or(0));
        Ok(n)
    }

    /// Stops accepting webhooks, finishes open requests, then keeps the stages running until
    /// the work queues are empty or `drain` has passed, then stops them after their current
    /// batch. With SQS, whatever is left waits in the queues for the next start.
    pub async fn shutdown(self, drain: Duration) -> ShutdownReport {
        let _ = self.stop_front.send(true);
        let _ = self.front.await;
        let deadline = tokio::time::Instant::now() + drain;
        let mut pending = self.stores.pending().await.unwrap_or(u64::MAX);
        while pending > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            pending = self.stores.pending().await.unwrap_or(u64::MAX);
        }
        let _ = self.stop_pollers.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        ShutdownReport {
            pending: self.stores.pending().await.unwrap_or(u64::MAX),
        }
    }

    /// Stops everything at once, mid-request and mid-batch, like a killed process: nothing is
    /// acknowledged that was not finished. Returns the stores, which outlive the crash.
    pub fn crash(self) -> Stores {
        self.front.abort();
        for task in &self.tasks {
            task.abort();
        }
        self.stores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_embedded_stores_spare_the_lookup_of_dedup_keys_from_before_they_were_scoped() {
        let dir = std::env::temp_dir().join(format!("wagate-scheme-{}", ulid::Ulid::new()));
        for stores in [Stores::memory(), Stores::sqlite(&dir).unwrap()] {
            assert!(!stores.may_hold_unscoped_dedup_keys());
            let options = Options::new(crate::config::LocalConfig::sample().unwrap());
            let stages = build(&stores, &options, &Arc::new(Stats::default()), None)
                .await
                .unwrap();
            // No legacy lookup per item, and nothing written to say since when keys are scoped.
            assert_eq!(stages.track.config.legacy_keys_until, None);
            let scheme = stores.docs.get("dedup-scheme", chrono::Utc::now()).await;
            assert!(scheme.unwrap().is_none());
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn on_the_embedded_backends_tasks_carry_their_body_as_a_document_unless_told() {
        let dir = std::env::temp_dir().join(format!("wagate-form-{}", ulid::Ulid::new()));
        for stores in [Stores::memory(), Stores::sqlite(&dir).unwrap()] {
            let options = Options::new(crate::config::LocalConfig::sample().unwrap());
            let stages = build(&stores, &options, &Arc::new(Stats::default()), None)
                .await
                .unwrap();
            assert_eq!(stages.fanout.body_form, BodyForm::Json);
            assert_eq!(stages.buffer.fanout.body_form, BodyForm::Json);
            let told = |v: &str| BTreeMap::from([("DELIVERY_BODY_FORM".to_owned(), v.to_owned())]);
            assert_eq!(body_form(&told("text"), &stores).unwrap(), BodyForm::Text);
            assert_eq!(body_form(&told(" json "), &stores).unwrap(), BodyForm::Json);
            let e = body_form(&told("yaml"), &stores).unwrap_err().to_string();
            assert!(e.contains("DELIVERY_BODY_FORM"), "{e}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_media_url_key_is_made_once_and_kept_for_its_owner_only() {
        let dir = std::env::temp_dir().join(format!("wagate-url-key-{}", ulid::Ulid::new()));
        let first = url_key(&dir).unwrap();
        // A restart reads the same key: URLs handed out before it still verify.
        assert_eq!(url_key(&dir).unwrap(), first);
        assert_ne!(first, [0; 32]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(".url-key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A damaged key file is replaced, not trusted.
        std::fs::write(dir.join(".url-key"), b"short").unwrap();
        let replaced = url_key(&dir).unwrap();
        assert_ne!(replaced, first);
        assert_eq!(url_key(&dir).unwrap(), replaced);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
